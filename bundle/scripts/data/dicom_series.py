"""Geometry of a DICOM series folder, read from the file headers only (``pydicom.dcmread(stop_before_pixels=True)``).

MONAI's PydicomReader sorts the slices by position and gives the volume one slice spacing: a series with a missing
slice, two slices at one position or slices of different orientation or pixel size would load without complaint as
a volume whose geometry is wrong. :func:`check_series` refuses such a series with one line naming the folder and the
problem, e.g. ``ct/: slice gap of 4 mm at z=-770.5 mm (after file CT.3), expected 2 mm``, and returns the series'
size (rows, columns, slices) so the memory budget can be checked before any pixel is read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["SeriesGeometry", "check_series", "POSITION_TOL_MM", "SPACING_RTOL"]

#: Two slices closer than this along the slice normal are at one position (a duplicate).
POSITION_TOL_MM = 0.01
#: A slice step may differ from the series' usual step by this fraction before it counts as a gap.
SPACING_RTOL = 0.1
#: Direction cosines and pixel spacings of the slices may differ by this much.
ORIENTATION_ATOL = 1e-3
PIXEL_SPACING_RTOL = 1e-3


@dataclass(frozen=True)
class SeriesGeometry:
    rows: int
    columns: int
    n_slices: int
    pixel_spacing: tuple[float, float]
    slice_spacing: float

    @property
    def shape(self) -> tuple[int, int, int]:
        """(columns, rows, slices): the axis order PydicomReader gives the volume."""
        return self.columns, self.rows, self.n_slices


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _headers(folder: Path) -> list[tuple[str, object]]:
    import pydicom
    from pydicom.misc import is_dicom

    out = []
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name.startswith(".") or not is_dicom(str(f)):
            continue
        try:
            out.append((f.name, pydicom.dcmread(str(f), stop_before_pixels=True)))
        except Exception as e:  # noqa: BLE001 - any header read failure names the file
            raise InputError(f"{folder}: cannot read the DICOM header of {f.name}: {' '.join(str(e).split())}") \
                from None
    return out


def _floats(ds, keyword: str, n: int, folder: Path, name: str) -> np.ndarray:
    value = ds.get(keyword)
    try:
        arr = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.size != n or not np.isfinite(arr).all():
        raise InputError(f"{folder}: {name} has no valid {keyword} ({value!r}); the slice geometry is unknown")
    return arr


def check_series(folder: str | os.PathLike) -> SeriesGeometry:
    """Check that the DICOM files directly in ``folder`` form one regular volume; raise :class:`InputError`
    (``"<folder>: <problem>"``) for: several series, slices of different size, orientation or pixel spacing,
    two slices at one position, or slice steps that are not uniform (a missing slice: ``slice gap of 4 mm at
    z=..., expected 2 mm``). Only the headers are read."""
    folder = Path(folder)
    headers = _headers(folder)
    if not headers:
        raise InputError(f"{folder}: no DICOM files in the folder")
    uids = {str(ds.get("SeriesInstanceUID", "")) for _, ds in headers}
    if len(uids) > 1:
        raise InputError(f"{folder}: holds {len(uids)} DICOM series (SeriesInstanceUID); give one series per folder")
    name0, ds0 = headers[0]
    size0 = (int(ds0.get("Rows", 0)), int(ds0.get("Columns", 0)))
    frames = sum(int(ds.get("NumberOfFrames", 1) or 1) for _, ds in headers)
    if frames > len(headers):   # enhanced multi-frame: the geometry is per frame, in functional groups; size only
        return SeriesGeometry(rows=size0[0], columns=size0[1], n_slices=frames, pixel_spacing=(0.0, 0.0),
                              slice_spacing=0.0)
    iop0 = _floats(ds0, "ImageOrientationPatient", 6, folder, name0)
    ps0 = _floats(ds0, "PixelSpacing", 2, folder, name0)
    normal = np.cross(iop0[:3], iop0[3:])
    if np.linalg.norm(normal) < 0.5:
        raise InputError(f"{folder}: {name0} has degenerate ImageOrientationPatient {iop0.tolist()}")
    normal /= np.linalg.norm(normal)
    positions = []
    for name, ds in headers:
        size = (int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))
        if size != size0:
            raise InputError(f"{folder}: {name} is {size[0]}x{size[1]} pixels, {name0} {size0[0]}x{size0[1]}; the "
                             f"slices of one series must have one size")
        iop = _floats(ds, "ImageOrientationPatient", 6, folder, name)
        if not np.allclose(iop, iop0, atol=ORIENTATION_ATOL):
            raise InputError(f"{folder}: {name} has orientation {np.round(iop, 4).tolist()}, {name0} "
                             f"{np.round(iop0, 4).tolist()} (ImageOrientationPatient); the slices are not parallel")
        ps = _floats(ds, "PixelSpacing", 2, folder, name)
        if not np.allclose(ps, ps0, rtol=PIXEL_SPACING_RTOL, atol=0):
            raise InputError(f"{folder}: {name} has pixel spacing {_fmt(ps[0])} x {_fmt(ps[1])} mm, {name0} "
                             f"{_fmt(ps0[0])} x {_fmt(ps0[1])} mm; the slices of one series must have one spacing")
        positions.append((float(np.dot(_floats(ds, "ImagePositionPatient", 3, folder, name), normal)), name))
    positions.sort()
    z = np.asarray([p for p, _ in positions])
    steps = np.diff(z)
    for i in np.flatnonzero(steps < POSITION_TOL_MM):
        raise InputError(f"{folder}: duplicate slice position z={_fmt(z[i])} mm ({positions[i][1]} and "
                         f"{positions[i + 1][1]}); remove the repeated slice")
    spacing = float(np.median(steps)) if steps.size else float(ds0.get("SliceThickness") or 1.0)
    if steps.size:
        bad = np.flatnonzero(np.abs(steps - spacing) > SPACING_RTOL * spacing)
        if bad.size:
            i = int(bad[0])
            what = "slice gap" if steps[i] > spacing else "slice step"
            more = f"; {bad.size} irregular steps in all" if bad.size > 1 else ""
            raise InputError(f"{folder}: {what} of {_fmt(steps[i])} mm at z={_fmt(z[i])}..{_fmt(z[i + 1])} mm "
                             f"(after {positions[i][1]}), expected {_fmt(spacing)} mm{more}; a slice is missing or "
                             f"the series mixes slice spacings")
    return SeriesGeometry(rows=size0[0], columns=size0[1], n_slices=len(headers),
                          pixel_spacing=(float(ps0[0]), float(ps0[1])), slice_spacing=spacing)
