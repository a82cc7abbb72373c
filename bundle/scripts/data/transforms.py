"""Bundle-specific dictionary transforms (only where MONAI has no equivalent).

``RemapLabelsd`` exists because MONAI's ``MapLabelValued`` leaves values that are not listed unchanged, while
a spine label map must send everything that is not a vertebra (organs, sacrum, spinal cord...) to 0.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform

from .label_maps import get_label_map, remap

__all__ = ["RemapLabelsd"]


class RemapLabelsd(MapTransform):
    """Remap label values to VerSe ids with a named label map (see :mod:`scripts.data.label_maps`).

    Args:
        keys: label keys to remap.
        label_map: default map: ``"verse"``, ``"totalseg"`` or a ``{source: verse_id}`` dict.
        label_map_key: data-dict key holding a per-case map that overrides ``label_map`` when present and not
            None (datalist entries may carry ``"label_map": "totalseg"``). The key is removed from the dict.
        binary: after mapping, any vertebra -> 1.
        allow_missing_keys: do not raise if a key is missing.

    Works on MetaTensors (meta and affine kept, type/dtype/device unchanged), torch tensors and numpy arrays.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_map: str | Mapping | None = "verse",
        label_map_key: str | None = "label_map",
        binary: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        get_label_map(label_map)  # fail at construction time on a typo
        self.label_map = label_map
        self.label_map_key = label_map_key
        self.binary = binary

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        label_map = self.label_map
        if self.label_map_key is not None:
            # the per-case key is consumed here: MONAI's spatial transforms treat any "label_*" entry as the
            # label's meta dict, and a batch mixing cases with and without the key would not collate
            case_map = d.pop(self.label_map_key, None)
            if case_map is not None:
                label_map = case_map
        for key in self.key_iterator(d):
            d[key] = remap(d[key], label_map, self.binary)
        return d
