"""Per-vertebra evaluation of an instance segmentation with VerSe ids against reference labels.

For each reference vertebra ``v`` the predicted instance that overlaps it most is its match (any id):

* ``dice`` and ``hd95_mm`` / ``hd_mm`` (95th-percentile and maximum symmetric Hausdorff distance, MONAI) between the
  reference vertebra and its match (0 / inf when nothing overlaps);
* ``detected``: the match has Dice >= 0.5 with the reference vertebra (one predicted segment per vertebra);
* ``identified``: detected and the match carries the same VerSe id (the name is right).

Rates: detection = detected / present, identification = identified / present; ``false_positives`` counts predicted
instances that are nobody's match. Both volumes must be on the same grid.
"""
from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance

from ..atomic_files import atomic_output
from ..metrics import _crop_to_union, case_metrics
from .levels import ANATOMICAL_ORDER, name, rank

__all__ = ["VERTEBRA_COLUMNS", "vertebra_metrics", "summarise_vertebrae", "write_vertebra_csv"]

VERTEBRA_COLUMNS = ("case", "vertebra_id", "name", "matched_id", "dice", "hd95_mm", "hd_mm", "detected", "identified")


def _hd(p: np.ndarray, t: np.ndarray, spacing) -> float:
    p, t = _crop_to_union(p, t)
    yp = torch.from_numpy(np.ascontiguousarray(p))[None, None].double()
    yt = torch.from_numpy(np.ascontiguousarray(t))[None, None].double()
    with warnings.catch_warnings():  # MONAI's own use of a deprecated get_mask_edges argument
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        return float(compute_hausdorff_distance(yp, yt, include_background=True, spacing=spacing)[0, 0])


def vertebra_metrics(pred, ref, spacing: Sequence[float] | None = None, case: str = "") -> tuple[list[dict], int]:
    """Rows (one per reference vertebra, in anatomical order) and the number of unmatched predicted instances."""
    p = np.asarray(pred.detach().cpu() if isinstance(pred, torch.Tensor) else pred).squeeze().astype(np.int64)
    r = np.asarray(ref.detach().cpu() if isinstance(ref, torch.Tensor) else ref).squeeze().astype(np.int64)
    if p.shape != r.shape:
        raise ValueError(f"prediction and reference grids differ: {p.shape} vs {r.shape}")
    spacing = [float(s) for s in spacing] if spacing is not None else None
    ref_ids = sorted({int(v) for v in np.unique(r)} & set(ANATOMICAL_ORDER), key=rank)
    rows, matched = [], set()
    for v in ref_ids:
        tv = r == v
        ids, counts = np.unique(p[tv], return_counts=True)
        keep = ids > 0
        ids, counts = ids[keep], counts[keep]
        if ids.size == 0:
            rows.append({"case": case, "vertebra_id": v, "name": name(v), "matched_id": 0, "dice": 0.0,
                         "hd95_mm": math.inf, "hd_mm": math.inf, "detected": False, "identified": False})
            continue
        m = int(ids[np.argmax(counts)])
        pm = p == m
        cm = case_metrics(pm, tv, spacing)
        detected = cm["dice"] >= 0.5
        if detected:
            matched.add(m)
        rows.append({"case": case, "vertebra_id": v, "name": name(v), "matched_id": m, "dice": cm["dice"],
                     "hd95_mm": cm["hd95_mm"], "hd_mm": _hd(pm, tv, spacing), "detected": detected,
                     "identified": bool(detected and m == v)})
    pred_ids = {int(v) for v in np.unique(p) if v > 0}
    return rows, len(pred_ids - matched)


def summarise_vertebrae(rows: Sequence[dict]) -> dict[str, float]:
    """Detection and identification rates and mean per-vertebra Dice / finite Hausdorff distances."""
    n = len(rows)
    if n == 0:
        return {"vertebrae": 0, "detection_rate": math.nan, "identification_rate": math.nan, "mean_dice": math.nan,
                "mean_hd95_mm": math.nan, "mean_hd_mm": math.nan}
    fin = lambda k: [float(x[k]) for x in rows if math.isfinite(float(x[k]))]  # noqa: E731
    return {"vertebrae": n,
            "detection_rate": sum(bool(x["detected"]) for x in rows) / n,
            "identification_rate": sum(bool(x["identified"]) for x in rows) / n,
            "mean_dice": float(np.mean([x["dice"] for x in rows])),
            "mean_hd95_mm": float(np.mean(fin("hd95_mm"))) if fin("hd95_mm") else math.nan,
            "mean_hd_mm": float(np.mean(fin("hd_mm"))) if fin("hd_mm") else math.nan}


def write_vertebra_csv(rows: Sequence[dict], path: str) -> str:
    """Write the rows (with :data:`VERTEBRA_COLUMNS`) atomically; returns ``path``."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=VERTEBRA_COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{row[k]:.4f}" if isinstance(row[k], float) else row[k]) for k in VERTEBRA_COLUMNS})
    return path
