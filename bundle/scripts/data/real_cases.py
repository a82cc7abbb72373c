"""The labelled real CTs in ``../shared/data/real`` (read in place, never copied), with their label conventions.

One registry for the real-CT benchmark (``benchmarks/real_ct.py``) and for the data mix that trains on real cases:
which file is the image, which the reference, which label map turns it into VerSe ids, which full TotalSegmentator
map names the organs around the spine, and whether the case may be trained on. ``verse014`` is the development
validation case (:data:`VALIDATION_CASE`) and is never trainable. ``SPINE_SHARED_DIR`` moves ``../shared``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REAL_DIR", "VALIDATION_CASE", "RealCase", "REAL_CASES", "available_cases", "training_entries"]

REAL_DIR = Path(os.environ.get("SPINE_SHARED_DIR", Path(__file__).resolve().parents[4] / "shared")) / "data" / "real"
#: the development validation case: benchmarked, never in a training set
VALIDATION_CASE = "verse014"


@dataclass(frozen=True)
class RealCase:
    """One labelled real CT; paths are relative to the real-data folder."""

    name: str
    image: str                 # a NIfTI file or a DICOM series folder
    label: str                 # vertebra labels (the reference spine is their union)
    label_map: str             # "verse" or "totalseg": how ``label`` maps to VerSe ids
    organ_map: str = ""        # a full TotalSegmentator v2 map, for false positives by structure
    trainable: bool = True
    note: str = ""

    def path(self, field: str, root: Path | None = None) -> Path:
        return Path(root or REAL_DIR) / getattr(self, field)

    def entry(self, root: Path | None = None) -> dict:
        """Its datalist entry: ``image``, ``label`` and ``label_map``."""
        return {"image": str(self.path("image", root)), "label": str(self.path("label", root)),
                "label_map": self.label_map}


REAL_CASES: tuple[RealCase, ...] = (
    RealCase(VALIDATION_CASE, "verse014/sub-verse014_ct.nii.gz", "verse014/sub-verse014_seg-vert_msk.nii.gz", "verse",
             trainable=False, note="manual VerSe'19 labels L1-L5, PIR; the development validation case"),
    RealCase("lidc_chest", "lidc_chest/ct.nii.gz", "lidc_chest/label_verse.nii.gz", "verse",
             organ_map="lidc_chest/totalseg.nii.gz", note="contrast chest CT, whole field of view; model-output labels"),
    RealCase("ts_example_ct", "ts_example_ct/example_ct.nii.gz", "ts_example_ct/totalseg_spine_only.nii.gz", "totalseg",
             organ_map="ts_example_ct/example_seg_fast_force_split.nii.gz",
             note="abdomen and pelvis, 3 mm; model-output labels"),
    RealCase("tptbox_ct_crop", "tptbox_ct_crop/sub-ct_label-22_ct.nii.gz",
             "tptbox_ct_crop/sub-ct_seg-vert_label-22_msk.nii.gz", "verse", note="lumbar crop, L2-L4, PIR"),
    RealCase("ts_example_ct_dicom", "ts_example_ct_dicom/dicom", "ts_example_ct_dicom/example_seg_dicom.nii.gz",
             "totalseg", organ_map="ts_example_ct_dicom/example_seg_dicom.nii.gz", trainable=False,
             note="DICOM series; its label NIfTI lies on a y-flipped grid, so it is compared in world space and not "
                  "trained on (training needs image and label on one grid)"),
)


def available_cases(root: Path | None = None, names=None) -> list[RealCase]:
    """The registered cases whose image and label exist under ``root`` (default :data:`REAL_DIR`), in registry
    order; ``names`` selects some (an unknown name is an error)."""
    known = {c.name: c for c in REAL_CASES}
    if names:
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(f"unknown real case(s) {unknown}; known: {sorted(known)}")
    chosen = [known[n] for n in names] if names else list(REAL_CASES)
    return [c for c in chosen if c.path("image", root).exists() and c.path("label", root).exists()]


def training_entries(root: Path | None = None) -> list[dict]:
    """Datalist entries (``image``, ``label``, ``label_map``) of every trainable real case that exists."""
    return [c.entry(root) for c in available_cases(root) if c.trainable]
