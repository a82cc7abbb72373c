"""Dataset fingerprint, computed the way nnU-Net v2 does it (``DatasetFingerprintExtractor``), in plain numpy.

Per case: read image and label, crop both to the (hole-filled) nonzero bounding box of the image, record the spacing
and the shape after cropping, and draw ``int(10e7 // n_cases)`` foreground intensities (``label > 0``) **with
replacement** with ``np.random.RandomState(1234)`` (the same seed for every case). Dataset level: pool the samples and
compute mean, median, std (ddof 0), min, max and the 0.5 / 99.5 percentiles (linear interpolation).

Axis convention
---------------
nnU-Net reads with SimpleITK: its arrays are the file's voxel axes *reversed* (``z, y, x`` for an axially stored file)
and so are its spacings. The bundle trains on ``Orientationd("RAS")`` arrays, axes ``x, y, z``. Mixing the two is what
goes wrong when porting, so this module stores everything in **nnU-Net's (z, y, x) order of the RAS-reoriented image**
(``axes="ras"``, the default): axis 0 = inferior->superior, 1 = posterior->anterior, 2 = left->right. Why:

* the planner's rules (anisotropy axis, ``transpose_forward``, tie-breaking in the patch shrink loop) are applied in
  exactly nnU-Net's order, so for axially stored data (RAS, LPS, LAS, ... files) the fingerprint *and* the plan are
  identical to nnU-Net's; the bundle's RAS ``(x, y, z)`` values are simply the reverse;
* unlike nnU-Net's file order it is anatomically consistent across a data set with mixed orientations (VerSe's PIR
  sagittal files next to RAS axial ones), so per-axis medians mean something.

``axes="file"`` reproduces nnU-Net bit for bit on any orientation (file voxel axes reversed, as SimpleITK returns them)
but its axes are only anatomical when all files share one orientation. The chosen order is recorded in the output
(``"axis_order"``). The foreground samples are always drawn in SimpleITK's voxel order (the reversed file array), so the
intensity statistics equal nnU-Net's in both modes.

CLI (from the bundle root)::

    python -m scripts.plan.fingerprint --dataset_dir /data/Dataset001 [--out fingerprint.json]
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "AXIS_ORDERS",
    "NUM_FOREGROUND_SAMPLES_TOTAL",
    "SEED",
    "analyze_case",
    "crop_to_nonzero",
    "extract_fingerprint",
    "intensity_statistics",
    "load_fingerprint",
    "read_case",
    "save_fingerprint",
]

#: nnU-Net's ``num_foreground_voxels_for_intensitystats``: ``10e7`` (= 1e8) samples for the whole data set.
NUM_FOREGROUND_SAMPLES_TOTAL = 10e7
#: nnU-Net's seed for the foreground sampling (``np.random.RandomState(1234)``, re-created for every case).
SEED = 1234
#: values of ``axes`` and the description written to the fingerprint's ``axis_order``.
AXIS_ORDERS = {
    "ras": "zyx of the RAS-reoriented image (nnU-Net order; axis 0 = I->S, 1 = P->A, 2 = L->R; "
    "the bundle's RAS x,y,z is the reverse)",
    "file": "zyx as SimpleITK reads it (file voxel axes reversed, no reorientation; exactly nnU-Net's arrays)",
}
_PERCENTILES = np.array((0.5, 50.0, 99.5))


def _reader():
    import nibabel as nib

    return nib


def read_case(image: str | os.PathLike, label: str | os.PathLike | None = None, axes: str = "ras"):
    """Read one case as nnU-Net does: ``(image[z, y, x] float32, label[z, y, x] float32 or None, spacing, perm)``.

    The arrays are in SimpleITK voxel order (file axes reversed). ``spacing`` is the voxel size in that order taken from
    the header's ``pixdim`` (what ITK uses), absolute values. ``perm`` maps the returned array axes to the requested
    output order (``axes``): ``out_axis k = array axis perm[k]`` (identity for ``axes="file"``).
    """
    if axes not in AXIS_ORDERS:
        raise ValueError(f"axes must be one of {sorted(AXIS_ORDERS)}, got {axes!r}")
    nib = _reader()
    img = nib.load(str(image))
    if len(img.shape) != 3:
        raise ValueError(f"{image}: expected a 3D image, got shape {tuple(img.shape)}")
    data = np.asarray(img.dataobj).astype(np.float32, copy=False).transpose(2, 1, 0)
    zooms = [abs(float(z)) for z in img.header.get_zooms()[:3]]
    spacing = zooms[::-1]
    seg = None
    if label is not None:
        lab = nib.load(str(label))
        if tuple(lab.shape[:3]) != tuple(img.shape[:3]):
            raise ValueError(f"{label}: label shape {tuple(lab.shape)} differs from image shape {tuple(img.shape)}")
        seg = np.asarray(lab.dataobj).astype(np.float32, copy=False).reshape(lab.shape[:3]).transpose(2, 1, 0)
    if axes == "file":
        perm = [0, 1, 2]
    else:
        # file axis k goes to RAS axis ornt[k, 0]; array axis a is file axis 2 - a; the output is reversed RAS,
        # i.e. output axis k is RAS axis 2 - k.
        ornt = nib.orientations.io_orientation(img.affine)
        ras_to_file = {int(ornt[k, 0]): k for k in range(3)}
        perm = [2 - ras_to_file[2 - k] for k in range(3)]
    return data, seg, spacing, perm


def crop_to_nonzero(data: np.ndarray, seg: np.ndarray | None = None, nonzero_label: int = -1):
    """nnU-Net's ``crop_to_nonzero`` for one channel ``data[z, y, x]``: mask = ``data != 0`` with holes filled, crop
    to its bounding box (the whole image when nothing is nonzero); label voxels that are 0 outside the mask become
    ``nonzero_label``. Returns ``(data, seg, bbox)`` with ``bbox`` as half-open ``[[start, end), ...]``."""
    from scipy.ndimage import binary_fill_holes

    mask = binary_fill_holes(data != 0)
    bbox = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        hits = np.flatnonzero(mask.any(axis=other))
        bbox.append([int(hits[0]), int(hits[-1]) + 1] if hits.size else [0, mask.shape[ax]])
    slicer = tuple(slice(a, b) for a, b in bbox)
    data = data[slicer]
    mask = mask[slicer]
    if seg is not None:
        seg = np.array(seg[slicer])
        seg[(seg == 0) & (~mask)] = nonzero_label
    else:
        seg = np.where(mask, np.int8(0), np.int8(nonzero_label))
    return data, seg, bbox


def analyze_case(image, label, num_samples: int, axes: str = "ras", seed: int = SEED) -> dict:
    """One case: shape after crop and spacing (in ``axes`` order), the foreground samples, the crop ratio, the labels
    present, plus per-case statistics (nnU-Net computes and drops them; kept here for reports)."""
    data, seg, spacing, perm = read_case(image, label, axes)
    shape_before = data.shape
    data_c, seg_c, _ = crop_to_nonzero(data, seg)
    rs = np.random.RandomState(seed)
    fg = data_c[seg_c > 0]
    samples = rs.choice(fg, int(num_samples), replace=True) if fg.size > 0 else []
    stats = None
    if fg.size > 0:
        p005, med, p995 = np.percentile(fg, _PERCENTILES)
        stats = {"mean": float(np.mean(fg)), "median": float(med), "min": float(np.min(fg)), "max": float(np.max(fg)),
                 "percentile_99_5": float(p995), "percentile_00_5": float(p005)}
    labels = np.unique(seg_c[seg_c >= 0]) if seg_c.size else np.array([])
    return {
        "shape_after_crop": [int(data_c.shape[p]) for p in perm],
        "spacing": [float(spacing[p]) for p in perm],
        "samples": samples,
        "relative_size_after_cropping": float(np.prod(data_c.shape) / np.prod(shape_before)),
        "labels": [int(v) if float(v).is_integer() else float(v) for v in labels],
        "stats": stats,
        "n_foreground": int(fg.size),
    }


def intensity_statistics(samples: np.ndarray) -> dict:
    """nnU-Net's dataset-level statistics of the pooled foreground samples (keys as in its fingerprint)."""
    samples = np.asarray(samples)
    if samples.size == 0:
        raise ValueError("no foreground voxels in any case: cannot compute intensity statistics (labels all 0?)")
    p005, median, p995 = np.percentile(samples, _PERCENTILES)
    return {
        "max": float(np.max(samples)),
        "mean": float(np.mean(samples)),
        "median": float(median),
        "min": float(np.min(samples)),
        "percentile_00_5": float(p005),
        "percentile_99_5": float(p995),
        "std": float(np.std(samples)),
    }


def _as_cases(cases: Iterable) -> list[dict]:
    out = []
    for i, case in enumerate(cases):
        if not isinstance(case, Mapping) or "image" not in case or "label" not in case:
            raise ValueError(f"case {i}: every case needs 'image' and 'label' (a labelled training case), got {case!r}")
        image = case["image"]
        if isinstance(image, (list, tuple)):
            if len(image) != 1:
                raise ValueError(f"case {i}: one CT channel expected, got {len(image)} images")
            image = image[0]
        for key, path in (("image", image), ("label", case["label"])):
            if not os.path.isfile(str(path)):
                raise FileNotFoundError(f"case {i}: {key} {path} is not a file (NIfTI expected)")
        out.append({"image": str(image), "label": str(case["label"])})
    if not out:
        raise ValueError("no cases: the fingerprint needs at least one labelled case")
    return out


def extract_fingerprint(
    cases: Sequence[Mapping],
    axes: str = "ras",
    num_samples_total: float = NUM_FOREGROUND_SAMPLES_TOTAL,
    seed: int = SEED,
    progress: bool = True,
) -> dict:
    """The data set fingerprint of ``cases`` (``[{"image": nii, "label": nii}, ...]``).

    Returns nnU-Net's 4 keys (``spacings``, ``shapes_after_crop`` in ``axes`` order, see the module doc,
    ``foreground_intensity_properties_per_channel`` with channel key ``"0"``, ``median_relative_size_after_cropping``)
    plus bundle extras: ``axis_order``, ``n_cases``, ``labels`` (label values present, incl. 0), ``cases`` and
    ``num_foreground_samples_per_case``.
    """
    from tqdm import tqdm

    if axes not in AXIS_ORDERS:
        raise ValueError(f"axes must be one of {sorted(AXIS_ORDERS)}, got {axes!r}")
    cases = _as_cases(cases)
    per_case = int(num_samples_total // len(cases))
    results = []
    for case in tqdm(cases, desc="fingerprint", unit="case", disable=not progress):
        results.append(analyze_case(case["image"], case["label"], per_case, axes=axes, seed=seed))
    # as nnU-Net: concatenate per channel (a case without foreground contributes an empty list)
    pooled = np.concatenate([r["samples"] for r in results])
    n_empty = sum(1 for r in results if r["n_foreground"] == 0)
    if n_empty:
        logger.warning("fingerprint: %d of %d cases have no foreground (label > 0)", n_empty, len(results))
    labels = sorted({v for r in results for v in r["labels"]} | {0})
    fingerprint = {
        "foreground_intensity_properties_per_channel": {"0": intensity_statistics(pooled)},
        "median_relative_size_after_cropping": float(np.median([r["relative_size_after_cropping"] for r in results])),
        "shapes_after_crop": [r["shape_after_crop"] for r in results],
        "spacings": [r["spacing"] for r in results],
        "axis_order": AXIS_ORDERS[axes],
        "axes": axes,
        "n_cases": len(results),
        "labels": labels,
        "num_foreground_samples_per_case": per_case,
        "cases": [c["image"] for c in cases],
    }
    return fingerprint


def save_fingerprint(fingerprint: Mapping, path: str | os.PathLike) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fingerprint, indent=2) + "\n")
    return str(path)


def load_fingerprint(path: str | os.PathLike) -> dict:
    """Read a fingerprint JSON (ours or nnU-Net's ``dataset_fingerprint.json``, which lacks ``axis_order``)."""
    with open(path) as f:
        fp = json.load(f)
    missing = [k for k in ("spacings", "shapes_after_crop", "foreground_intensity_properties_per_channel")
               if k not in fp]
    if missing:
        raise ValueError(f"{path}: not a dataset fingerprint (missing {', '.join(missing)})")
    return fp


def _cli(dataset_dir: str | None = None, datalist: str | None = None, out: str | None = None, axes: str = "ras",
         phantom_dir: str = "data/phantom", n_phantoms: int = 10) -> dict | str:
    """Fingerprint of all labelled training cases (training + validation folds) of a dataset folder / datalist /
    the phantom set; writes ``out`` when given, else returns the JSON (without the sample-heavy parts)."""
    from scripts.data.sources import training_data

    data = training_data(dataset_dir or None, datalist or None, phantom_dir, n_phantoms)
    cases = list(data["training"]) + list(data.get("validation") or [])
    fp = extract_fingerprint(cases, axes=axes)
    if out:
        return save_fingerprint(fp, out)
    return json.dumps(fp, indent=2)


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fire.Fire(_cli)
