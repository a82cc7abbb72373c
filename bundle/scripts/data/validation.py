"""Validate every case before any training starts, with one clear line per problem.

Config use (returns the items unchanged on success)::

    "train_items": "$scripts.data.validation.validate_datalist(@datalist['training'])",

CLI::

    python -m scripts.data.validation check --dataset_dir X        # or --datalist datalist.json
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["CaseError", "validate_case", "validate_datalist", "check", "HU_MIN", "HU_MAX"]

#: Plausible CT value range. -4096 tolerates the usual outside-the-field padding (-2048, -3024).
HU_MIN = -4096
HU_MAX = 32767
#: A CT in HU spans more than this between its 1st and 99th percentile and contains air (< AIR_MAX).
MIN_PERCENTILE_SPAN = 200.0
AIR_MAX = -200.0
#: Percentiles are estimated on at most this many voxels (strided subsample) to stay fast on big volumes.
_MAX_PERCENTILE_VOXELS = 4_000_000
#: An "image" with at most this many distinct values, all integers in [0, 255], is a label mask, not a CT.
LABEL_LIKE_MAX_VALUES = 64
#: Label values are counted slab by slab, this many voxels at a time (no full-size int64 copy of a big label).
_SLAB_VOXELS = 8_000_000
_MAX_COUNTED_ID = 4095


class CaseError(InputError):
    """A case failed validation; ``str(err)`` is ``"<path>: <problem>"`` (one line per failing case)."""


def _read(path: str, what: str):
    """-> (header-only loader, spatial shape, affine); raises CaseError if missing/unreadable."""
    p = Path(path)
    if not p.exists():
        raise CaseError(f"{path}: {what} file does not exist")
    from .datalist import is_dicom_series

    if p.is_dir():
        if not is_dicom_series(p):
            raise CaseError(f"{path}: {what} is a folder without DICOM files")
        try:
            from .datalist import load_image

            img = load_image(p)
        except Exception as e:  # noqa: BLE001 - any reader failure is a case error
            raise CaseError(f"{path}: cannot read DICOM series: {_one_line(e)}") from None
        arr = img.numpy()
        return (lambda: arr), tuple(arr.shape), np.asarray(img.affine, dtype=float)
    import nibabel as nib

    try:
        img = nib.load(str(p))
        shape = tuple(int(s) for s in img.shape)
        affine = np.asarray(img.affine, dtype=float)
    except Exception as e:  # noqa: BLE001
        raise CaseError(f"{path}: cannot read {what} header: {_one_line(e)}") from None

    def data():
        try:
            proxy = img.dataobj
            scaled = getattr(proxy, "slope", 1.0) != 1.0 or getattr(proxy, "inter", 0.0) != 0.0
            # scaled int16 CTs would otherwise come back as float64 (2x the memory of float32)
            return np.asarray(proxy, dtype=np.float32) if scaled else np.asanyarray(proxy)
        except Exception as e:  # noqa: BLE001 - truncated / corrupt gzip etc.
            raise CaseError(f"{path}: cannot read {what} data: {_one_line(e)}") from None

    return data, shape, affine


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) < 300 else msg[:297] + "..."


def _spatial(shape: tuple, path: str, what: str) -> tuple:
    """3D spatial shape; a trailing singleton channel (x, y, z, 1[, 1]) is accepted."""
    if len(shape) < 3:
        raise CaseError(f"{path}: {what} has {len(shape)} dimensions {shape}, expected a 3D volume")
    if len(shape) > 3 and any(s != 1 for s in shape[3:]):
        raise CaseError(
            f"{path}: {what} has shape {shape}: 4D / multi-channel, expected a single-channel 3D volume"
        )
    return shape[:3]


def _reoriented_grid(shape: tuple, affine: np.ndarray, target_affine: np.ndarray) -> tuple[tuple, np.ndarray]:
    """Shape and affine of a grid after nibabel-reorienting it to the axis orientation of ``target_affine``."""
    from nibabel.orientations import inv_ornt_aff, io_orientation, ornt_transform

    try:
        t = ornt_transform(io_orientation(affine), io_orientation(target_affine))
    except ValueError:  # degenerate affine
        return tuple(shape), affine
    new_shape = [0, 0, 0]
    for i, (ax, _) in enumerate(t):
        new_shape[int(ax)] = int(shape[i])
    return tuple(new_shape), affine @ inv_ornt_aff(t, shape)


def _subsample(arr: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil((arr.size / _MAX_PERCENTILE_VOXELS) ** (1 / 3))))
    return arr[::step, ::step, ::step] if arr.ndim >= 3 else arr


def _percentiles(arr: np.ndarray) -> tuple[float, float]:
    p1, p99 = np.percentile(_subsample(arr), [1, 99])
    return float(p1), float(p99)


def _label_like_values(arr: np.ndarray) -> list | None:
    """The distinct values of an image that holds only a few small non-negative integers (a mask), else None."""
    values = np.unique(_subsample(arr))
    if len(values) > LABEL_LIKE_MAX_VALUES or values[0] < 0 or values[-1] > 255 or np.any(values != np.round(values)):
        return None
    return [int(v) for v in values]


def _label_values(lab: np.ndarray) -> list[int]:
    """The distinct values of a non-negative integer label, counted slab by slab along the last axis."""
    seen = np.zeros(_MAX_COUNTED_ID + 1, bool)
    large: set[int] = set()
    step = max(1, _SLAB_VOXELS // max(1, int(np.prod(lab.shape[:-1]))))
    for z in range(0, lab.shape[-1], step):
        slab = np.asarray(lab[..., z:z + step]).ravel()
        slab = slab.astype(np.int64) if slab.dtype.kind in "fb" or slab.dtype == np.uint64 else slab
        over = slab > _MAX_COUNTED_ID
        if over.any():
            large.update(int(v) for v in np.unique(slab[over]))
            slab = slab[~over]
        seen |= np.bincount(slab, minlength=seen.size) > 0
    return np.flatnonzero(seen).tolist() + sorted(large)


def _listed(values, limit: int = 12) -> str:
    values = sorted(values)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")


def _check_label_values(label: str, values: list[int], label_map) -> None:
    """Values outside the label map's convention, or no vertebra after mapping: a CaseError naming the file."""
    from .label_maps import get_label_map, known_ids, label_map_name

    known = known_ids(label_map)
    outside = [v for v in values if v != 0 and v not in known]
    if outside:
        raise CaseError(
            f"{label}: label values {_listed(outside)} are outside {label_map_name(label_map)} (its ids "
            f"{_listed(known)}, 0 background); give the case the label_map of its convention"
        )
    mapping = get_label_map(label_map)
    if not any(mapping.get(v, 0) > 0 for v in values):
        raise CaseError(
            f"{label}: label has no vertebra under {label_map_name(label_map)} (values {_listed(values)}): "
            f"an empty label can be neither trained on nor scored"
        )


def validate_case(
    image: str | os.PathLike,
    label: str | os.PathLike | None = None,
    atol_mm: float = 1e-3,
    hu_min: float = HU_MIN,
    hu_max: float = HU_MAX,
    label_map: str | Mapping | None = None,
) -> dict:
    """Check one case; raise :class:`CaseError` (``"<path>: <problem>"``) on the first problem found.

    Image (NIfTI file or DICOM series folder): exists and readable, 3D single-channel (trailing singleton dims
    OK), finite, CT-like values in HU (``hu_min <= min``, ``max <= hu_max``, contains air (min < -200) and
    1st-99th percentile span > 200, i.e. not already normalised). Label (optional): exists and readable, same
    spatial shape, affine equal within ``atol_mm`` (``np.allclose``; the max difference is reported), finite
    non-negative integer values, all ids of ``label_map``'s convention (None: ``"verse"``; see
    ``scripts.data.label_maps.known_ids``), and at least one vertebra after mapping (an empty label is an error). An
    image holding only a few small non-negative integers is reported as a label mask given as the CT. A label
    holding the same voxel grid in another axis order/direction (e.g. a y-flipped NIfTI label of a DICOM series) is
    accepted, since the pipeline reorients image and label alike (``Orientationd``) before anything voxel-wise; the
    summary then has ``"label_reoriented": True``.

    Returns a small summary: ``{"image", "label", "shape", "spacing", "hu_range"}``.
    """
    image = str(image)
    img_data, img_shape, img_affine = _read(image, "image")
    shape = _spatial(img_shape, image, "image")
    arr = np.asarray(img_data()).reshape(shape)
    if arr.dtype.kind not in "iuf" and arr.dtype != bool:
        raise CaseError(f"{image}: image has unsupported data type {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise CaseError(f"{image}: image has {n_bad} non-finite (NaN/inf) voxels")
    if not np.isfinite(img_affine).all():
        raise CaseError(f"{image}: image affine is not finite")
    vmin, vmax = float(arr.min()), float(arr.max())
    if vmin < hu_min or vmax > hu_max:
        raise CaseError(
            f"{image}: intensity range [{vmin:g}, {vmax:g}] is outside the CT range [{hu_min:g}, {hu_max:g}] HU"
        )
    p1, p99 = _percentiles(arr)
    if vmin >= 0 and (values := _label_like_values(arr)) is not None:
        raise CaseError(
            f"{image}: image looks like a label mask, not a CT ({len(values)} distinct integer values "
            f"{_listed(values)}); give the CT in Hounsfield units as the image"
        )
    if p99 - p1 <= MIN_PERCENTILE_SPAN or vmin >= AIR_MAX:
        raise CaseError(
            f"{image}: intensities look normalised, not HU (min {vmin:g}, 1st-99th percentile {p1:g}..{p99:g}); "
            f"give the raw CT in Hounsfield units"
        )
    del arr
    summary = {
        "image": image,
        "label": None,
        "shape": tuple(int(s) for s in shape),
        "spacing": tuple(float(s) for s in np.linalg.norm(img_affine[:3, :3], axis=0)),
        "hu_range": (vmin, vmax),
    }
    if label is None:
        return summary

    label = str(label)
    lab_data, lab_shape, lab_affine = _read(label, "label")
    lshape = _spatial(lab_shape, label, "label")
    same = lshape == shape and np.allclose(lab_affine, img_affine, rtol=0.0, atol=atol_mm)
    if not same:
        # same voxel grid stored in another axis order/direction (e.g. a NIfTI label of a DICOM series)?
        r_shape, r_affine = _reoriented_grid(lshape, lab_affine, img_affine)
        if r_shape == shape and np.allclose(r_affine, img_affine, rtol=0.0, atol=atol_mm):
            summary["label_reoriented"] = True
        elif lshape != shape and r_shape != shape:
            raise CaseError(f"{label}: shape {lshape} differs from image shape {shape}")
        else:
            diff = float(np.abs((lab_affine if lshape == shape else r_affine) - img_affine).max())
            raise CaseError(
                f"{label}: affine differs from the image affine by up to {diff:.4g} mm (atol {atol_mm:g})"
            )
    lab = np.asarray(lab_data()).reshape(lshape)
    if lab.dtype.kind == "f":
        if not np.isfinite(lab).all():
            raise CaseError(f"{label}: label has non-finite (NaN/inf) voxels")
        if not np.array_equal(lab, np.round(lab)):
            raise CaseError(f"{label}: label has non-integer values (e.g. {lab[lab != np.round(lab)].flat[0]:g})")
    elif lab.dtype.kind not in "iub":
        raise CaseError(f"{label}: label has unsupported data type {lab.dtype}")
    if lab.size and float(lab.min()) < 0:
        raise CaseError(f"{label}: label has negative values (min {float(lab.min()):g})")
    _check_label_values(label, _label_values(lab), label_map)
    summary["label"] = label
    return summary


def _item_paths(item: Mapping) -> tuple:
    img, lab = item.get("image"), item.get("label")
    if img is None:
        raise CaseError(f"{item}: entry has no 'image'")
    for v in (img, lab):
        if isinstance(v, (list, tuple)):
            raise CaseError(f"{v[0] if v else v}: multi-file (multi-channel) entries are not supported")
    return img, lab


def validate_datalist(
    items: Sequence[Mapping], progress: bool = True, atol_mm: float = 1e-3, max_lines: int = 10,
    label_map: str | Mapping | None = "verse",
) -> Sequence[Mapping]:
    """Validate every entry (``image``, optional ``label`` and ``label_map``; ``label_map`` here is the map of entries
    without one), collecting ALL failures, then raise one :class:`CaseError` ``"<n> of <m> cases failed
    validation:"`` followed by the first ``max_lines`` case lines. Returns ``items`` unchanged (same object) on
    success."""
    from tqdm import tqdm

    from .label_maps import get_label_map

    errors: list[str] = []
    for item in tqdm(items, desc="validating cases", disable=not progress, unit="case"):
        try:
            img, lab = _item_paths(item)
            case_map = item.get("label_map") if item.get("label_map") is not None else label_map
            try:
                get_label_map(case_map)
            except ValueError as e:
                raise CaseError(f"{lab or img}: {e}") from None
            validate_case(img, lab, atol_mm=atol_mm, label_map=case_map)
        except CaseError as e:
            errors.append(str(e))
    if errors:
        head = "\n".join(f"  {e}" for e in errors[:max_lines])
        more = f"\n  ... and {len(errors) - max_lines} more" if len(errors) > max_lines else ""
        raise CaseError(f"{len(errors)} of {len(items)} cases failed validation:\n{head}{more}")
    return items


def check(
    dataset_dir: str | None = None,
    datalist: str | None = None,
    base_dir: str | None = None,
    atol_mm: float = 1e-3,
) -> None:
    """CLI: validate every training/validation/testing entry of a dataset folder or datalist JSON.
    Prints ``OK: ...`` or the error lines and exits with status 1 if any case fails."""
    import sys

    from .datalist import load_datalist

    data = load_datalist(dataset_dir=dataset_dir, datalist=datalist, base_dir=base_dir, n_folds=None)
    items = [it for key in ("training", "validation", "testing") for it in data[key]]
    try:
        validate_datalist(items, progress=True, atol_mm=atol_mm)
    except CaseError as e:
        print(str(e), file=sys.stderr)
        sys.exit(1)
    print(f"OK: {len(items)} cases valid ({len(data['training']) + len(data['validation'])} labelled)")


if __name__ == "__main__":
    import fire

    fire.Fire({"check": check})
