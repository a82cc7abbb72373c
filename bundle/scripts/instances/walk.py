"""Step 2 inference: walk down the spine one vertebra at a time (Serrador et al. 2024, section 4.4 of our spec).

Start at the top-most slice where the spine heatmap reaches ``threshold`` (0.3), at the heatmap's maximum in that
slice. Then repeat: segment the 128^3 patch around the current centre given the memory of accepted vertebrae, move
the centre to the segment's centre of mass, and accept the segment as the next vertebra once the last three centres
lie within ``max_delta`` (2) voxels of each other. After an acceptance the patch stays where it is; the memory now
holds that vertebra, so the network returns the next one down. The walk stops when the segment is empty or smaller
than ``min_voxels``, when its centre of mass leaves the heatmap (heat < ``threshold``), or after ``max_vertebrae``.

What the published pseudocode leaves open, and what we do:
* an accepted vertebra is written only where no earlier vertebra is (never overwritten);
* a vertebra whose centre keeps moving is accepted after ``max_iterations`` (20, Lessmann et al.'s alternation cap);
* the segment is written at the patch position it was predicted in, not at the re-centred one;
* the heat test applies from the second vertebra on: the start point lies on the heatmap by construction, and the
  top vertebra is often cut by the field of view, where the heatmap fades (seen on phantoms: the first segment's
  centre at heat 0.28 stopped the walk before any vertebra).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .sampling import crop_with_pad

__all__ = ["WalkResult", "walk_spine", "start_point"]


@dataclass
class WalkResult:
    """``instances``: uint8 volume, 1..n in detection order (top first); ``records``: one dict per vertebra
    (index, voxels, centroid_vox, iterations, converged); ``stop_reason``: why the walk ended."""

    instances: torch.Tensor
    records: list[dict] = field(default_factory=list)
    stop_reason: str = ""


def start_point(heat: torch.Tensor, threshold: float = 0.3) -> np.ndarray | None:
    """The top-most (largest z) slice with heat >= ``threshold`` and the heatmap's argmax (x, y) in it."""
    hot = torch.nonzero((heat >= threshold).any(dim=0).any(dim=0)).flatten()
    if hot.numel() == 0:
        return None
    z = int(hot.max())
    flat = int(torch.argmax(heat[:, :, z]))
    return np.array([flat // heat.shape[1], flat % heat.shape[1], z])


def walk_spine(ct: torch.Tensor, heat: torch.Tensor,
               segment: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               patch_size: Sequence[int] = (128, 128, 128), threshold: float = 0.3, max_delta: float = 2.0,
               max_iterations: int = 20, max_vertebrae: int = 26, min_voxels: int = 200,
               pad_value: float = -1.0) -> WalkResult:
    """Run the two-step algorithm's second step.

    Args:
        ct: (X, Y, Z) CT at 1 mm, RAS, normalised as in training.
        heat: (X, Y, Z) spine heatmap in [0, 1] on the same grid (step 1's output resized back).
        segment: ``(ct_patch, memory_patch) -> bool mask`` of the next vertebra, all of ``patch_size``.
    """
    if ct.shape != heat.shape or ct.ndim != 3:
        raise ValueError(f"ct and heat must be 3D and of the same shape, got {tuple(ct.shape)} and {tuple(heat.shape)}")
    size = np.asarray([int(p) for p in patch_size])
    inst = torch.zeros(ct.shape, dtype=torch.uint8)
    result = WalkResult(inst)
    centre = start_point(heat, threshold)
    if centre is None:
        result.stop_reason = f"the heatmap never reaches {threshold}"
        return result
    history: list[np.ndarray] = []
    iterations = 0
    while len(result.records) < max_vertebrae:
        start = np.round(centre).astype(int) - size // 2
        mem = crop_with_pad(inst > 0, start, size, False)
        seg = segment(crop_with_pad(ct, start, size, pad_value), mem).to(torch.bool) & ~mem
        n = int(seg.sum())
        if n < min_voxels:
            result.stop_reason = f"segment of {n} voxels (< {min_voxels}) at centre {centre.round().tolist()}"
            break
        com = torch.nonzero(seg).to(torch.float64).mean(0).numpy() + start
        idx = tuple(int(np.clip(round(c), 0, s - 1)) for c, s in zip(com, ct.shape))
        if result.records and float(heat[idx]) < threshold:
            result.stop_reason = f"centre of mass {list(idx)} left the spine heatmap ({float(heat[idx]):.2f})"
            break
        history = (history + [com])[-3:]
        iterations += 1
        converged = len(history) == 3 and max(
            np.linalg.norm(a - b) for k, a in enumerate(history) for b in history[k + 1:]) < max_delta
        if converged or iterations >= max_iterations:
            label = len(result.records) + 1
            region = tuple(slice(max(s, 0), min(s + p, d)) for s, p, d in zip(start, size, ct.shape))
            local = tuple(slice(r.start - s, r.stop - s) for r, s in zip(region, start))
            view = inst[region]
            view[seg[local] & (view == 0)] = label
            result.records.append({"index": label, "voxels": int((inst == label).sum()),
                                   "centroid_vox": [float(c) for c in com], "iterations": iterations,
                                   "converged": bool(converged)})
            history, iterations = [], 0
        centre = com
    else:
        result.stop_reason = f"reached max_vertebrae={max_vertebrae}"
    return result
