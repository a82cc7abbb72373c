"""Step 1 target: a spine heatmap made of Gaussians at the vertebra centroids.

The method (Serrador et al. 2024, after Payer et al.) resizes the whole 1 mm CT to 64x64x128 voxels and trains the
localisation network against the sum of 3D Gaussians (sigma 10 voxels of that grid) centred on the vertebra
centroids, divided by its maximum, as two softmax channels (heat, 1 - heat). The centroids are computed from the
label on its own grid and scaled into the heatmap grid, so no label resampling is involved.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import GenerateHeatmap, MapTransform
from scipy import ndimage as ndi

from .levels import LEVEL_NAME

__all__ = ["HEATMAP_SHAPE", "vertebra_centroids", "centroid_heatmap", "CentroidHeatmapd"]

#: Grid of the step 1 network (RAS x, y, z; z runs along the spine).
HEATMAP_SHAPE: tuple[int, int, int] = (64, 64, 128)


def vertebra_centroids(label) -> dict[int, np.ndarray]:
    """Voxel-space centroids ``{verse_id: (i, j, k)}`` of every vertebra id present in a 3D label (or 1xXxYxZ)."""
    lab = np.asarray(label.detach().cpu() if isinstance(label, torch.Tensor) else label)
    if lab.ndim == 4:
        lab = lab[0]
    if lab.ndim != 3:
        raise ValueError(f"label must be 3D (or channel-first 4D), got shape {lab.shape}")
    lab = lab.astype(np.int64, copy=False)
    ids = [v for v in np.unique(lab) if v in LEVEL_NAME]
    if not ids:
        return {}
    coms = ndi.center_of_mass(np.ones(lab.shape, np.uint8), lab, ids)
    return {int(v): np.asarray(c, dtype=np.float64) for v, c in zip(ids, coms)}


def centroid_heatmap(centroids: Sequence, shape: Sequence[int] = HEATMAP_SHAPE, sigma: float = 10.0) -> np.ndarray:
    """Sum of unit-peak Gaussians (``sigma`` voxels) at ``centroids`` (N x 3, voxels of ``shape``), divided by its
    maximum; float32 array of ``shape`` in [0, 1]. An empty list gives zeros."""
    shape = tuple(int(s) for s in shape)
    pts = np.asarray(centroids, dtype=np.float32).reshape(-1, 3)
    if len(pts) == 0:
        return np.zeros(shape, np.float32)
    per_point = GenerateHeatmap(sigma=float(sigma), spatial_shape=shape, normalize=True)(pts)
    heat = torch.as_tensor(per_point).sum(0).numpy().astype(np.float32)
    peak = float(heat.max())
    return heat / peak if peak > 0 else heat


class CentroidHeatmapd(MapTransform):
    """Add ``heatmap_key`` = (heat, 1 - heat) on ``shape``, from the vertebra centroids of ``label_key``.

    ``label_key`` holds the label on its own grid (channel-first); its centroids are scaled by
    ``shape / label_shape`` (voxel centres, so the scaling is ``(c + 0.5) * s / n - 0.5``).
    """

    def __init__(self, keys: KeysCollection = "label", heatmap_key: str = "heatmap",
                 shape: Sequence[int] = HEATMAP_SHAPE, sigma: float = 10.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.heatmap_key, self.shape, self.sigma = heatmap_key, tuple(int(s) for s in shape), float(sigma)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            lab = d[key]
            spatial = np.asarray(lab.shape[-3:], dtype=np.float64)
            cents = vertebra_centroids(lab)
            scale = np.asarray(self.shape, np.float64) / spatial
            pts = [(c + 0.5) * scale - 0.5 for c in cents.values()]
            heat = centroid_heatmap(pts, self.shape, self.sigma)
            d[self.heatmap_key] = torch.as_tensor(np.stack([heat, 1.0 - heat]))
        return d
