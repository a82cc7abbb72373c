"""Memory-lean post-processing for full-size CT masks."""
from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import KeepLargestConnectedComponent, MapTransform
from monai.transforms.utils import generate_spatial_bounding_box

__all__ = ["KeepLargestConnectedComponentInBoxd"]


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
