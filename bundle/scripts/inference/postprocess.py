"""Memory-lean post-processing for full-size CT masks."""
from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing
from monai.transforms import KeepLargestConnectedComponent, MapTransform
from monai.transforms.utils import generate_spatial_bounding_box, get_largest_connected_component_mask
from scipy.ndimage import maximum_filter1d

__all__ = ["KeepLargestConnectedComponentInBoxd", "KeepNearConfidentCored"]


class KeepLargestConnectedComponentInBoxd(MapTransform):
    """MONAI's :class:`KeepLargestConnectedComponent`, run only inside the bounding box of the mask's foreground.

    Every component lies inside that box, so the result is identical to running it on the whole volume, but the
    labelling arrays (int64 in scikit-image: 8 bytes per voxel, 1.2 GB for a 512x512x600 CT) shrink to the box.
    The mask is modified in place.
    """

    def __init__(self, keys: KeysCollection, independent: bool = True, connectivity: int | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = KeepLargestConnectedComponent(independent=independent, connectivity=connectivity)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            mask = d[key]
            start, end = generate_spatial_bounding_box(mask)
            if any(e <= s for s, e in zip(start, end)):
                continue  # empty mask: nothing to keep or remove
            box = (slice(None), *(slice(s, e) for s, e in zip(start, end)))
            mask[box] = self.transform(mask[box])
        return d


class KeepNearConfidentCored(MapTransform):
    """Zero a binary probability map farther than ``margin_mm`` from its confident core.

    The core is the largest connected component of ``probability > core_threshold``. Voxels that pass the final
    threshold only through a weak bridge to the spine (on a contrast CT, the aorta beside the vertebral bodies) lie
    outside that core's margin and are dropped; the spine's own boundary, within the margin, is kept as it was.
    Runs on the input grid (after ``Invertd``), before ``AsDiscreted``; the margin is in mm, from the map's affine.
    The labelling and the margin (a cuboid of whole voxels within ``margin_mm`` along each axis, found by
    separable maximum filters) run in the core's bounding box plus the margin only. A map without a
    confident voxel is left as it is. Modifies the map in place.

    Args:
        keys: the probability map(s), one channel (``sigmoid`` output).
        core_threshold: probability above which a voxel belongs to the core; above the mask's threshold.
        margin_mm: distance from the core within which the map is kept.
    """

    def __init__(self, keys: KeysCollection, core_threshold: float = 0.7, margin_mm: float = 4.0,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if not 0.0 < float(core_threshold) < 1.0:
            raise ValueError(f"core_threshold must lie in (0, 1), got {core_threshold}")
        if float(margin_mm) < 0:
            raise ValueError(f"margin_mm must be >= 0, got {margin_mm}")
        self.core_threshold, self.margin_mm = float(core_threshold), float(margin_mm)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            prob = d[key]
            if prob.shape[0] != 1:
                raise ValueError(f"{key}: KeepNearConfidentCored takes a one-channel probability map, "
                                 f"got {prob.shape[0]} channels")
            spacing = affine_to_spacing(prob.affine, r=3).tolist() if isinstance(prob, MetaTensor) else [1.0] * 3
            start, end = generate_spatial_bounding_box(prob, select_fn=lambda x: x > self.core_threshold)
            if any(e <= s for s, e in zip(start, end)):
                continue  # no confident voxel: nothing to anchor a margin on
            reach = [int(np.floor(self.margin_mm / s)) for s in spacing]  # whole voxels within the margin, per axis
            box = (slice(None), *(slice(max(0, s - r), min(n, e + r))
                                  for s, e, r, n in zip(start, end, reach, prob.shape[1:])))
            inside = prob[box]
            core = get_largest_connected_component_mask((inside[0] > self.core_threshold).cpu().numpy())  # CUDA too
            near = core.astype(np.uint8)
            for axis, r in enumerate(reach):  # a cuboid of +-reach voxels: separable, one byte per voxel
                if r:
                    near = maximum_filter1d(near, size=2 * r + 1, axis=axis, mode="constant")
            inside[0][torch.from_numpy(near == 0).to(inside.device)] = 0
            kept = inside.clone()
            prob.zero_()
            prob[box] = kept
        return d
