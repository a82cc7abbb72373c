"""Real-CT benchmark: the bundle's inference on every labelled real CT in ``../shared/data/real``, scored per case.

For each case of ``scripts.data.real_cases.REAL_CASES`` it runs ``configs/inference.yaml`` (the fast coarse-to-fine
path by default, ``--coarse_to_fine false`` for the paper's whole-volume configuration) with the given checkpoint,
then scores the written mask on the input's own grid against the reference spine (the union of the vertebra labels,
resampled by world coordinates, so a label on another grid, such as the DICOM case's, is compared where it lies):

* ``dice``, ``hd95_mm`` (``scripts.metrics.case_metrics``), ``recall``, ``pred_ml`` and ``fp_ml`` (predicted volume
  outside the reference);
* ``fp_beyond_ref_levels_ml``, the predicted volume in the axial slices above and below the reference's levels, and
  ``dice_in_ref_levels``, the Dice within them: a diagnosis for a reference that labels only some of the vertebrae
  in its field of view (verse014: L1-L5, with T12 and the sacrum in view), never the benchmark's Dice;
* with a full TotalSegmentator map: the predicted voxels on each structure of
  ``label_maps.TOTALSEG_STRUCTURES`` and ``critical_share``, the share of all predicted voxels that lie on the
  heart, aorta, kidneys, ribs, scapulae or sternum (``label_maps.OFF_TARGET_CRITICAL``);
* ``fp_boundary_ml`` and ``fn_boundary_ml``: the false positives within the boundary band outside the reference and
  the misses within it inside (the band: :data:`BOUNDARY_MM`, or one voxel where voxels are coarser). Both large
  is a boundary that wanders; one much larger than the other, a mask drawn wider (or narrower) than the reference;
* ``fp_components``: the largest connected false-positive regions (26-connected), each with its volume, mean HU,
  median distance to the reference, axial position against the reference's levels (``above``, ``below``,
  ``within``), the TotalSegmentator structure under most of it (with a full map) and ``dice_without``, the case's
  Dice had that region not been predicted: where the Dice is lost, in figures;
* on the fast path: ``box_spine_share`` (share of the reference spine inside the coarse box) and
  ``box_volume_share`` (the box's share of the volume).

It prints one row per case, writes the figures as JSON and draws one QC montage PNG: a row per case, a sagittal and
a coronal slice through the reference spine's centre, yellow where prediction and reference agree, red where the
prediction has no reference (false positive), green where the reference was missed.

    cd bundle && OMP_NUM_THREADS=2 python ../benchmarks/real_ct.py run [--checkpoint models/model.pt] \\
        [--coarse_checkpoint models/coarse.pt] [--coarse_to_fine false] [--cases verse014,lidc_chest] \\
        [--out_dir eval/real_ct] [--spacing "[2,2,2]" --patch_size "[96,96,64]"  # any inference.yaml key]

``ceiling`` runs no model: it gives each reference's Dice with itself after a round trip through coarser voxels, the
best any model predicting at that spacing can score (``--spacings "[1,1.5,2]"``).

verse014 is the development validation case: it is never trained on. The other cases' figures are sanity figures
for models that trained on them.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
if str(BUNDLE) not in sys.path:
    sys.path.insert(0, str(BUNDLE))

from scripts.data.label_maps import OFF_TARGET_CRITICAL, TOTALSEG_STRUCTURES, remap  # noqa: E402
from scripts.data.real_cases import REAL_DIR, available_cases  # noqa: E402
from scripts.file_digest import file_md5  # noqa: E402
from scripts.metrics import case_metrics  # noqa: E402

logger = logging.getLogger("real_ct")

#: width of the boundary band of ``fp_boundary_ml`` / ``fn_boundary_ml``: one voxel of the models' 2 mm grid
BOUNDARY_MM = 2.0

#: how many false-positive regions each case reports, largest first
FP_COMPONENTS = 3

#: the columns of the printed table, in order
TABLE_COLUMNS = ("dice", "hd95_mm", "recall", "pred_ml", "fp_ml", "fp_beyond_ref_levels_ml", "dice_in_ref_levels",
                 "fp_boundary_ml", "fn_boundary_ml", "critical_share", "box_spine_share", "box_volume_share")


# ---- geometry -------------------------------------------------------------------------------------------------
def canonical(path: str | os.PathLike):
    """``(array, affine, spacing)`` of a NIfTI file in RAS-canonical voxel order (``nib.as_closest_canonical``, the
    order MONAI's ``Orientationd(axcodes="RAS")`` gives the inferer)."""
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(str(path)))
    return np.asanyarray(img.dataobj), np.asarray(img.affine, dtype=float), tuple(float(z) for z in img.header.get_zooms()[:3])


def load_on_grid(path: str | os.PathLike, shape, affine) -> np.ndarray:
    """A label volume (NIfTI, any orientation and grid) resampled by world coordinates onto ``shape``/``affine`` with
    MONAI's nearest-neighbour ``SpatialResample``; outside its field of view it is 0."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    arr, src_affine, _ = canonical(path)
    src = MetaTensor(torch.as_tensor(np.asarray(arr, dtype=np.float32))[None], affine=torch.as_tensor(src_affine))
    out = SpatialResample(mode="nearest", padding_mode="zeros", dtype=torch.float32)(
        src, dst_affine=torch.as_tensor(affine, dtype=torch.float64), spatial_size=[int(s) for s in shape])
    return np.rint(out.as_tensor().numpy()[0]).astype(np.int32)


def load_image_canonical(path: str | os.PathLike):
    """The CT (NIfTI file or DICOM folder) as MONAI reads it for inference, in RAS order: ``(array, affine)``."""
    from monai.transforms import Compose, LoadImage, Orientation

    img = Compose([LoadImage(reader=["PydicomReader", "NibabelReader"], ensure_channel_first=True),
                   Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))])(str(path))
    return img.as_tensor().numpy()[0], np.asarray(img.affine, dtype=float)


# ---- scoring --------------------------------------------------------------------------------------------------
def _structure_name(label_id: int) -> str | None:
    """The ``TOTALSEG_STRUCTURES`` name of a TotalSegmentator v2 id, or None (background or an unlisted id)."""
    return next((name for name, ids in TOTALSEG_STRUCTURES.items() if label_id in ids), None)


def false_positive_components(pred, ref, spacing, ct=None, organ_map=None, top: int = FP_COMPONENTS) -> list[dict]:
    """The ``top`` largest 26-connected regions of ``pred & ~ref``, largest first (see the module docstring).

    ``levels`` compares the region's axial extent (axis 2, inferior -> superior in RAS) with the reference's:
    ``above``/``below`` when it lies wholly beyond the reference's slices, else ``within``."""
    from monai.transforms.utils import distance_transform_edt
    from skimage.measure import label as connected_regions

    pred, ref = np.asarray(pred) != 0, np.asarray(ref) != 0
    fp = pred & ~ref
    if not fp.any():
        return []
    regions = connected_regions(fp, connectivity=3)
    sizes = np.bincount(regions.ravel())[1:]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    tp, n_pred, n_ref = int(np.count_nonzero(pred & ref)), int(pred.sum()), int(ref.sum())
    dist = distance_transform_edt((~ref)[None], sampling=[float(s) for s in spacing])[0] if n_ref else None
    ref_z = np.flatnonzero(ref.any(axis=(0, 1)))
    out = []
    for k in np.argsort(-sizes, kind="stable")[:top]:
        region = regions == k + 1
        n = int(sizes[k])
        z = np.flatnonzero(region.any(axis=(0, 1)))
        levels = ("above" if n_ref and z[0] > ref_z[-1] else "below" if n_ref and z[-1] < ref_z[0] else "within")
        item = {"ml": n * voxel_ml, "voxels": n, "levels": levels,
                "median_distance_mm": float(np.median(dist[region])) if dist is not None else float("nan"),
                "dice_without": 2.0 * tp / (n_pred - n + n_ref) if n_pred - n + n_ref else float("nan")}
        if ct is not None:
            item["mean_hu"] = float(np.asarray(ct)[region].mean())
        if organ_map is not None:
            ids = np.bincount(np.asarray(organ_map)[region].astype(np.int64).ravel())
            named = [(int(c), _structure_name(i)) for i, c in enumerate(ids) if c and i]
            named = [(c, name) for c, name in named if name]
            item["structure"] = max(named)[1] if named and max(named)[0] * 2 > n else None
        out.append(item)
    return out


def score_case(pred, ref, spacing, organ_map=None, box=None, ct=None) -> dict:
    """The benchmark's figures for one case; every input is on one voxel grid.

    Args:
        pred: the predicted spine mask (nonzero = spine).
        ref: the reference spine mask.
        spacing: voxel size in mm.
        organ_map: a TotalSegmentator v2 map on the same grid, or None.
        box: the coarse box ``(start, end)`` in voxels of this grid, or None (no coarse stage ran).
        ct: the CT in HU on the same grid, or None (the false-positive regions then carry no mean HU).
    """
    pred, ref = np.asarray(pred) != 0, np.asarray(ref) != 0
    voxel_ml = float(np.prod(spacing)) / 1000.0
    metrics = case_metrics(pred, ref, spacing)
    n_pred, n_ref = int(pred.sum()), int(ref.sum())
    tp = int(np.count_nonzero(pred & ref))
    row = {"dice": metrics["dice"], "hd95_mm": metrics["hd95_mm"], "recall": tp / n_ref if n_ref else float("nan"),
           "pred_ml": n_pred * voxel_ml, "fp_ml": (n_pred - tp) * voxel_ml, "ref_ml": n_ref * voxel_ml,
           "pred_voxels": n_pred, "ref_voxels": n_ref}
    if n_ref:   # a reference that labels only some levels (verse014: L1-L5) counts the levels beyond it as errors
        z = np.flatnonzero(ref.any(axis=(0, 1)))
        slab = (slice(None), slice(None), slice(int(z[0]), int(z[-1]) + 1))
        n_slab = int(pred[slab].sum())
        row["fp_beyond_ref_levels_ml"] = (n_pred - n_slab) * voxel_ml
        row["dice_in_ref_levels"] = 2.0 * tp / (n_slab + n_ref) if n_slab + n_ref else float("nan")
    if organ_map is not None:
        on = np.asarray(organ_map)[pred]
        counts = np.bincount(on.astype(np.int64).ravel(), minlength=256) if on.size else np.zeros(256, np.int64)
        row["on_structure_voxels"] = {name: int(counts[list(ids)].sum()) for name, ids in TOTALSEG_STRUCTURES.items()}
        critical = sum(row["on_structure_voxels"][name] for name in OFF_TARGET_CRITICAL)
        row["critical_share"] = critical / n_pred if n_pred else 0.0
    if n_ref:
        from monai.transforms.utils import distance_transform_edt

        band = max(BOUNDARY_MM, max(float(x) for x in spacing))
        sampling = [float(x) for x in spacing]
        outside = distance_transform_edt((~ref)[None], sampling=sampling)[0]
        inside = distance_transform_edt(ref[None], sampling=sampling)[0]
        row["fp_boundary_ml"] = int(np.count_nonzero(pred & ~ref & (outside <= band))) * voxel_ml
        row["fn_boundary_ml"] = int(np.count_nonzero(ref & ~pred & (inside <= band))) * voxel_ml
    row["fp_components"] = false_positive_components(pred, ref, spacing, ct=ct, organ_map=organ_map)
    if box is not None:
        start, end = box
        inside = tuple(slice(int(s), int(e)) for s, e in zip(start, end))
        row["box_spine_share"] = float(ref[inside].sum()) / n_ref if n_ref else float("nan")
        row["box_volume_share"] = float(np.prod([int(e) - int(s) for s, e in zip(start, end)])) / pred.size
    return row


def overlay_labels(pred, ref) -> np.ndarray:
    """1 = predicted only (false positive), 2 = reference only (missed), 3 = both: ``qc.QC_COLORS`` draws them red,
    green and yellow."""
    pred, ref = np.asarray(pred) != 0, np.asarray(ref) != 0
    return (pred.astype(np.uint8) + 2 * ref.astype(np.uint8)).astype(np.uint8)


def _chosen_cases(cases, real_dir):
    """``(root, cases)``: the real-data folder and the available cases named by ``--cases`` (comma text or list;
    none = all)."""
    root = Path(real_dir) if real_dir else REAL_DIR
    names = [n for n in cases.split(",") if n] if isinstance(cases, str) else list(cases or [])
    return root, available_cases(root, names or None)


def round_trip_dice(ref, affine, spacing_mm: float) -> float:
    """Dice of a reference mask with itself after a round trip through ``spacing_mm`` isotropic voxels: resampled
    there (MONAI ``Spacing``, bilinear on the 0/1 mask, as a model's probabilities at that spacing), back onto its own
    grid (bilinear, as inference.yaml's ``Invertd`` of the probabilities) and thresholded at 0.5. It is the best Dice
    any model that predicts at that spacing can reach on the case."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Spacing, SpatialResample

    ref = np.asarray(ref) != 0
    src = MetaTensor(torch.as_tensor(ref.astype(np.float32))[None], affine=torch.as_tensor(affine, dtype=torch.float64))
    low = Spacing(pixdim=(float(spacing_mm),) * 3, mode="bilinear")(src)
    back = SpatialResample(mode="bilinear")(low, dst_affine=src.affine, spatial_size=ref.shape)
    out = back.as_tensor().numpy()[0] > 0.5
    total = int(out.sum()) + int(ref.sum())
    return 2.0 * int(np.count_nonzero(out & ref)) / total if total else float("nan")


def ceiling(spacings: str | list | tuple = (1.0, 1.5, 2.0), cases: str | list | tuple | None = None,
            real_dir: str | None = None, results: str | None = None) -> list[dict]:
    """The resolution ceiling: :func:`round_trip_dice` of every case's reference at each spacing, one row per case
    (no model runs). ``python ../benchmarks/real_ct.py ceiling [--spacings "[1,1.5,2,3]"] [--results F.json]``."""
    root, chosen = _chosen_cases(cases, real_dir)
    values = [float(v) for v in (spacings.split(",") if isinstance(spacings, str) else spacings)]
    rows = []
    for case in chosen:
        if case.path("label", root).is_dir() or not case.path("image", root).is_file():
            continue   # the reference must lie on the image's grid: the DICOM case's label does not
        arr, affine, native = canonical(case.path("label", root))
        ref = remap(np.asarray(arr).astype(np.int32), case.label_map, binary=True)
        rows.append({"case": case.name, "native_spacing_mm": [round(v, 4) for v in native],
                     **{f"dice_at_{v:g}mm": round(round_trip_dice(ref, affine, v), 4) for v in values}})
        print(" | ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    if results:
        Path(results).write_text(json.dumps({"what": ceiling.__doc__.split(":")[0] + ": Dice of each reference with "
                                             "itself after a bilinear round trip through isotropic voxels",
                                             "command": f"cd bundle && python ../benchmarks/real_ct.py ceiling "
                                                        f"--spacings \"{values}\"", "cases": rows}, indent=1))
    return rows


# ---- inference ------------------------------------------------------------------------------------------------
def infer(image: Path, output_dir: Path, checkpoint: str, coarse_checkpoint: str, coarse_to_fine: bool,
          overrides: dict) -> tuple[Path, tuple | None]:
    """Run configs/inference.yaml on one input; -> (the written mask, the coarse box on the RAS grid or None)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.yaml"))
    parser.update({"bundle_root": str(BUNDLE), "image": str(image), "output_dir": str(output_dir),
                   "ckpt_path": str(checkpoint), "coarse_ckpt_path": str(coarse_checkpoint),
                   "coarse_to_fine": bool(coarse_to_fine), **overrides})
    parser.get_parsed_content("initialize")
    parser.get_parsed_content("evaluator").run()
    inferer = parser.get_parsed_content("inferer")
    masks = sorted(output_dir.glob("*_seg.nii.gz"))
    if len(masks) != 1:
        raise RuntimeError(f"{image}: expected one mask in {output_dir}, found {[m.name for m in masks]}")
    box = getattr(inferer, "last_box", None) if coarse_to_fine else None
    return masks[0], box


# ---- montage --------------------------------------------------------------------------------------------------
def montage(panels: list[tuple[str, np.ndarray]], path: Path) -> Path:
    """Stack ``(caption, RGB picture)`` rows into one PNG, each row under a caption strip."""
    from PIL import Image, ImageDraw

    width = max(p.shape[1] for _, p in panels)
    strip = 18
    rows = []
    for caption, pic in panels:
        row = np.zeros((pic.shape[0] + strip, width, 3), dtype=np.uint8)
        row[strip:, : pic.shape[1]] = pic
        im = Image.fromarray(row)
        ImageDraw.Draw(im).text((4, 3), caption, fill=(255, 255, 255))
        rows.append(np.asarray(im))
    Image.fromarray(np.concatenate(rows, axis=0)).save(str(path))
    return path


def qc_row(ct, pred, ref, spacing, caption: str) -> tuple[str, np.ndarray]:
    from scripts.qc import qc_image

    ref = np.asarray(ref) != 0
    if ref.any():
        counts = [ref.sum(axis=tuple(j for j in range(3) if j != a)) for a in range(3)]
        centre = [int(round(np.dot(c, np.arange(c.size)) / c.sum())) for c in counts]
    else:
        centre = [s // 2 for s in ref.shape]
    pic = qc_image(ct, overlay_labels(pred, ref), spacing, centre=centre, max_size=420, min_size=300)
    return caption, pic


# ---- the command ----------------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def table(rows: list[dict]) -> str:
    head = "| case | " + " | ".join(TABLE_COLUMNS) + " | most predicted voxels off the spine |"
    lines = [head, "|" + "---|" * (len(TABLE_COLUMNS) + 2)]
    for r in rows:
        on = r.get("on_structure_voxels") or {}
        top = ", ".join(f"{k} {v}" for k, v in sorted(on.items(), key=lambda kv: -kv[1])[:3] if v) or "-"
        lines.append(f"| {r['case']} | " + " | ".join(_fmt(r.get(c)) for c in TABLE_COLUMNS) + f" | {top} |")
    return "\n".join(lines)


def fp_table(rows: list[dict]) -> str:
    """The largest false-positive regions of each case, one line each: where the Dice is lost."""
    lines = ["| case | region | ml | mean HU | levels | median mm from reference | structure | Dice without it |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for k, c in enumerate(r.get("fp_components") or [], 1):
            hu = f"{c['mean_hu']:.0f}" if "mean_hu" in c else "-"
            lines.append(f"| {r['case']} | {k} | {c['ml']:.1f} | {hu} | {c['levels']} | "
                         f"{_fmt(c['median_distance_mm'])} | {c.get('structure') or '-'} | {_fmt(c['dice_without'])} |")
    return "\n".join(lines)


def run(checkpoint: str = str(BUNDLE / "models" / "model.pt"), coarse_checkpoint: str = str(BUNDLE / "models" / "coarse.pt"),
        coarse_to_fine: bool = True, cases: str | list | tuple | None = None, out_dir: str = str(BUNDLE / "eval" / "real_ct"),
        results: str | None = None, real_dir: str | None = None, threads: int | None = None, **overrides) -> list[dict]:
    """Benchmark one checkpoint on the real CTs; see the module docstring. Extra ``--key value`` pairs override
    inference.yaml keys (e.g. ``--spacing "[2,2,2]"`` for a model trained at 2 mm)."""
    import torch

    from scripts.flags import as_bool

    coarse_to_fine = as_bool(coarse_to_fine, "--coarse_to_fine")   # the command line gives the text "false"
    if threads:
        torch.set_num_threads(int(threads))
    root, chosen = _chosen_cases(cases, real_dir)
    if not chosen:
        raise SystemExit(f"{root}: no labelled real CT found (set SPINE_SHARED_DIR)")
    for what, path in (("--checkpoint", checkpoint), ("--coarse_checkpoint", coarse_checkpoint if coarse_to_fine else "")):
        if path and not Path(path).is_file():
            raise SystemExit(f"{path}: {what} does not exist")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, panels = [], []
    for case in chosen:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            mask_path, box = infer(case.path("image", root), Path(tmp), checkpoint, coarse_checkpoint, coarse_to_fine,
                                   overrides)
            pred, affine, spacing = canonical(mask_path)
            seconds = time.perf_counter() - t0
            final = out / "masks" / f"{case.name}_seg.nii.gz"
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(mask_path, final)
        ref = remap(load_on_grid(case.path("label", root), pred.shape, affine), case.label_map, binary=True)
        organ = load_on_grid(case.path("organ_map", root), pred.shape, affine) if case.organ_map else None
        ct, ct_affine = load_image_canonical(case.path("image", root))
        if ct.shape != pred.shape or not np.allclose(ct_affine, affine, atol=1e-3):
            raise RuntimeError(f"{case.name}: the mask is not on the input's grid ({pred.shape} vs {ct.shape})")
        row = {"case": case.name, "trained_on_allowed": case.trainable, "seconds": seconds,
               **score_case(pred, ref, spacing, organ, box, ct=ct)}
        rows.append(row)
        panels.append(qc_row(ct, pred, ref, spacing, f"{case.name}  Dice {row['dice']:.3f}  recall {row['recall']:.3f}"
                                                     f"  FP {row['fp_ml']:.0f} ml"))
        print(f"{case.name}: Dice {row['dice']:.3f} ({seconds:.1f} s)", flush=True)
    record = {"checkpoint": str(checkpoint), "checkpoint_md5": file_md5(checkpoint),
              "coarse_checkpoint": str(coarse_checkpoint) if coarse_to_fine else None,
              "coarse_to_fine": bool(coarse_to_fine), "overrides": {k: v for k, v in overrides.items()},
              "real_dir": str(root), "cases": rows}
    results_path = Path(results) if results else out / "real_ct.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(record, indent=1, default=float))
    png = montage(panels, out / "real_ct_montage.png")
    print(table(rows))
    print(fp_table(rows))
    print(f"figures -> {results_path}; montage -> {png}")
    return rows


def main(**kwargs) -> None:
    """The command line's ``run``: :func:`run` without echoing its rows (the table is printed already)."""
    run(**kwargs)


def ceiling_main(**kwargs) -> None:
    """The command line's ``ceiling``: :func:`ceiling` without echoing its rows."""
    ceiling(**kwargs)


if __name__ == "__main__":
    import fire

    fire.Fire({"run": main, "ceiling": ceiling_main})
