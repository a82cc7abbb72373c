"""Per-case binary segmentation metrics for spine CT (foreground = any vertebra).

``case_metrics(pred, label, spacing)`` compares two binary masks on the same voxel grid and returns
the values listed in :data:`METRIC_COLUMNS`:

===========  =================================================================================
``dice``     Sørensen-Dice, ``monai.metrics.compute_dice``
``iou``      Jaccard / intersection over union, ``monai.metrics.compute_iou``
``voe``      volumetric overlap error, ``1 - iou``
``hd95_mm``  95th-percentile symmetric Hausdorff distance in mm,
             ``monai.metrics.compute_hausdorff_distance(percentile=95, spacing=spacing)``
             (MONAI: 95th percentile of each directed surface-distance set, max of the two)
``assd_mm``  average symmetric surface distance in mm,
             ``monai.metrics.compute_average_surface_distance(symmetric=True, spacing=spacing)``
             (mean over the pooled pred->label and label->pred surface-voxel distances)
``ari``      adjusted Rand index of the two binary partitions of *all* voxels (see :func:`adjusted_rand_index`)
===========  =================================================================================

Surfaces are MONAI's: the boundary voxels of each mask (``mask & ~erode(mask)``), with the distance between
voxel centres measured in mm using ``spacing``.

Inputs: numpy arrays or torch tensors (``MetaTensor`` included) of any dtype; **nonzero = foreground**.
Shapes must be equal after squeezing leading singleton (batch/channel) dimensions; 3-D is the intended use, but
2-D works too (``spacing`` then has 2 entries).

Edge cases (no warnings are raised for them, the values are defined here):

* both masks empty: ``dice = iou = 1``, ``voe = 0``, ``hd95_mm = assd_mm = 0``, ``ari = 1``
  (a correct "nothing there" prediction is a perfect one);
* exactly one mask empty: ``dice = iou = 0``, ``voe = 1``, ``hd95_mm = assd_mm = inf`` (there is no surface to
  measure to; ``inf`` keeps "infinitely wrong" distinguishable from "not computed" = ``nan``), ``ari`` from the
  formula (0 unless the other mask fills the whole grid, in which case both partitions are trivial and ARI = 1).

:func:`summarise` averages each column over its *finite* values only, so one empty prediction does not turn the
mean distance into ``inf``; the per-case row keeps the ``inf``. For normal (both non-empty) cases every value is
finite.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_dice,
    compute_hausdorff_distance,
    compute_iou,
)

__all__ = ["METRIC_COLUMNS", "case_metrics", "adjusted_rand_index", "summarise", "case_name", "to_binary_mask"]

#: metric keys returned by :func:`case_metrics`, in CSV column order (the CSV adds a leading ``case`` column)
METRIC_COLUMNS: list[str] = ["dice", "iou", "voe", "hd95_mm", "assd_mm", "ari"]

_NIFTI_LIKE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".npy", ".npz", ".dcm", ".gz")


def to_binary_mask(x) -> np.ndarray:
    """Return ``x != 0`` as a numpy bool array (torch tensors are detached and moved to CPU).

    Leading singleton dimensions (batch / channel of size 1) are squeezed while ``ndim > 3``.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if hasattr(x, "as_tensor"):  # MetaTensor -> plain tensor (drops the meta, cheaper to convert)
            x = x.as_tensor()
        x = x.numpy()
    m = np.asarray(x) != 0
    while m.ndim > 3 and m.shape[0] == 1:
        m = m[0]
    return m


def adjusted_rand_index(pred, label) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985) of two binary partitions of the voxels.

    Each mask splits the ``n`` voxels into {foreground, background}; ARI compares the two partitions by counting voxel
    *pairs*, corrected for chance so that identical partitions give 1 and independent ones give ~0 (it can be
    slightly negative). From the 2x2 contingency table ``n_ij`` (rows: pred bg/fg, columns: label bg/fg) with row
    sums ``a_i``, column sums ``b_j`` and ``C(k) = k (k - 1) / 2``::

        index    = sum_ij C(n_ij)
        expected = sum_i C(a_i) * sum_j C(b_j) / C(n)
        max      = (sum_i C(a_i) + sum_j C(b_j)) / 2
        ARI      = (index - expected) / (max - expected)

    The denominator is 0 only when both partitions are trivial (each mask all-background or all-foreground); they
    are then the same one-cluster partition and ARI is defined as 1 (same convention as scikit-learn). Everything
    is computed with Python integers (exact), so large volumes (~1e8 voxels, ~1e16 pairs) lose no precision.
    """
    p, t = to_binary_mask(pred), to_binary_mask(label)
    if p.shape != t.shape:
        raise ValueError(f"pred and label shapes differ: {p.shape} vs {t.shape}")
    n = int(p.size)
    tp = int(np.count_nonzero(p & t))
    n_p, n_t = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    fp, fn = n_p - tp, n_t - tp
    tn = n - tp - fp - fn

    def c2(k: int) -> int:
        return k * (k - 1) // 2

    index = c2(tp) + c2(fp) + c2(fn) + c2(tn)
    sum_a = c2(n_p) + c2(n - n_p)
    sum_b = c2(n_t) + c2(n - n_t)
    total = c2(n)
    if total == 0:
        return 1.0
    # multiply through by 2 * C(n) to stay in integers: ARI = (2 C(n) index - 2 a b) / (C(n) (a + b) - 2 a b)
    num = 2 * total * index - 2 * sum_a * sum_b
    den = total * (sum_a + sum_b) - 2 * sum_a * sum_b
    if den == 0:
        return 1.0
    return num / den  # int / int true division is correctly rounded


def _crop_to_union(p: np.ndarray, t: np.ndarray, margin: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union (+ ``margin``); Dice/IoU/surface distances are invariant."""
    union = p | t
    slices = []
    for ax in range(union.ndim):
        other = tuple(i for i in range(union.ndim) if i != ax)
        idx = np.flatnonzero(union.any(axis=other))
        slices.append(slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + margin + 1, union.shape[ax])))
    return p[tuple(slices)], t[tuple(slices)]


def case_metrics(pred, label, spacing: Sequence[float] | float | None = None) -> dict[str, float]:
    """Metrics of one case: binary ``pred`` vs binary ``label`` on the same grid.

    Args:
        pred: predicted mask, numpy array or torch tensor, any dtype, nonzero = foreground. Shape ``(X, Y, Z)``
            (leading singleton batch/channel dims are accepted and squeezed).
        label: reference mask, same shape and conventions as ``pred``.
        spacing: voxel size in mm along each array axis (e.g. from ``monai.data.utils.affine_to_spacing``);
            a single number means isotropic; ``None`` means 1 mm.

    Returns:
        ``{name: float}`` for every name in :data:`METRIC_COLUMNS`. See the module docstring for the empty-mask
        conventions (``inf`` distances when exactly one mask is empty).
    """
    p, t = to_binary_mask(pred), to_binary_mask(label)
    if p.shape != t.shape:
        raise ValueError(f"pred and label shapes differ: {p.shape} vs {t.shape}")
    if spacing is not None and not np.isscalar(spacing):
        spacing = [float(s) for s in np.asarray(spacing, dtype=float).ravel()]
        if len(spacing) != p.ndim:
            raise ValueError(f"spacing has {len(spacing)} entries for a {p.ndim}-D mask")

    ari = adjusted_rand_index(p, t)
    p_any, t_any = bool(p.any()), bool(t.any())
    if not p_any and not t_any:
        return {"dice": 1.0, "iou": 1.0, "voe": 0.0, "hd95_mm": 0.0, "assd_mm": 0.0, "ari": ari}
    if not p_any or not t_any:
        inf = math.inf
        return {"dice": 0.0, "iou": 0.0, "voe": 1.0, "hd95_mm": inf, "assd_mm": inf, "ari": ari}

    p, t = _crop_to_union(p, t)
    # MONAI metric functions expect one-hot, batch-first, binarised tensors: (B=1, C=1, *spatial)
    # (float64 so that Dice/IoU are not rounded to float32)
    yp = torch.from_numpy(np.ascontiguousarray(p))[None, None].double()
    yt = torch.from_numpy(np.ascontiguousarray(t))[None, None].double()
    dice = float(compute_dice(yp, yt, include_background=True, ignore_empty=False)[0, 0])
    iou = float(compute_iou(yp, yt, include_background=True, ignore_empty=False)[0, 0])
    with warnings.catch_warnings():
        # MONAI 1.5+ warns about its *own* internal use of a deprecated get_mask_edges argument; not actionable here
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        hd95 = float(
            compute_hausdorff_distance(yp, yt, include_background=True, percentile=95, spacing=spacing)[0, 0]
        )
        assd = float(
            compute_average_surface_distance(yp, yt, include_background=True, symmetric=True, spacing=spacing)[0, 0]
        )
    return {"dice": dice, "iou": iou, "voe": 1.0 - iou, "hd95_mm": hd95, "assd_mm": assd, "ari": ari}


def summarise(rows: Iterable[Mapping[str, float]], columns: Sequence[str] = METRIC_COLUMNS) -> dict[str, float]:
    """Mean of each metric over the rows, ignoring non-finite values (``inf``/``nan``); ``nan`` if none is finite."""
    rows = list(rows)
    out: dict[str, float] = {}
    for col in columns:
        vals = np.asarray([float(r[col]) for r in rows if col in r and r[col] is not None], dtype=float)
        vals = vals[np.isfinite(vals)]
        out[col] = float(vals.mean()) if vals.size else math.nan
    return out


def case_name(path) -> str:
    """Case identifier from a file path: the base name without the image extension
    (``/x/sub-verse014_ct.nii.gz`` -> ``sub-verse014_ct``). Non-path values are returned as ``str``."""
    if isinstance(path, (list, tuple)) and path:  # un-decollated meta (one entry per batch item)
        path = path[0]
    name = os.path.basename(str(path))
    for suffix in _NIFTI_LIKE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
