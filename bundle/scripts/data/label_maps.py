"""Named label mappings, so real data sets with different label conventions are used without converting files.

The bundle's target label space is VerSe: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 28 T13, 0 background.

* ``"verse"``: identity on the VerSe vertebra ids (1..25, 28); every other value -> 0.
* ``"totalseg"``: TotalSegmentator v2 "total" ids 27 (L5) .. 50 (C1) -> VerSe id ``51 - t``;
  25 sacrum, 26 S1, 79 spinal cord and every other value -> 0.
* a dict ``{source_id: verse_id}`` (keys may be strings, as they come from JSON); unlisted values -> 0.

The ids a label may hold (:func:`known_ids`, checked by ``scripts.data.validation``): for ``"verse"`` 1..28 (the
vertebrae, and VerSe's 26 sacrum and 27 coccyx, which map to 0), for ``"totalseg"`` TotalSegmentator v2's 1..117
(the organs map to 0), for a dict its keys (list an id with target 0 to send it to background on purpose).

``binary=True`` is applied after the mapping: any vertebra -> 1.

The remapping is a single vectorised look-up-table gather (numpy or torch), so it is cheap on full volumes.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["VERSE_IDS", "LABEL_MAPS", "KNOWN_IDS", "TOTALSEG_STRUCTURES", "OFF_TARGET_CRITICAL", "get_label_map",
           "known_ids", "label_map_name", "lookup_table", "remap"]

#: VerSe vertebra ids: C1..C7, T1..T12, L1..L6 and T13 (28). 26/27 (sacrum/coccyx in some releases) are not used.
VERSE_IDS: tuple[int, ...] = tuple(range(1, 26)) + (28,)

#: Built-in named maps (source id -> VerSe id); values not listed map to 0.
LABEL_MAPS: dict[str, dict[int, int]] = {
    "verse": {i: i for i in VERSE_IDS},
    "totalseg": {t: 51 - t for t in range(27, 51)},
}

#: Every id of each named map's own convention (0, background, aside): values outside are not that convention.
KNOWN_IDS: dict[str, frozenset[int]] = {
    "verse": frozenset(range(1, 29)),        # 1-25 and 28 vertebrae, 26 sacrum, 27 coccyx
    "totalseg": frozenset(range(1, 118)),    # TotalSegmentator v2 "total": 117 classes
}

#: TotalSegmentator v2 "total" ids of the named structures around the spine (Wasserthal et al. 2023, class map v2):
#: where a prediction's false positives land, and the anatomy the label-map synthesis draws. "sacrum" includes S1
#: (26), which has no VerSe id and is therefore not spine in this bundle.
TOTALSEG_STRUCTURES: dict[str, tuple[int, ...]] = {
    "heart": (51,),
    "aorta": (52,),
    "ivc": (63,),
    "kidneys": (2, 3),
    "liver": (5,),
    "spleen": (1,),
    "ribs": tuple(range(92, 116)),
    "sternum": (116,),
    "costal_cartilages": (117,),
    "scapulae": (71, 72),
    "clavicles": (73, 74),
    "humeri": (69, 70),
    "hips": (77, 78),
    "femurs": (75, 76),
    "sacrum": (25, 26),
    "spinal_cord": (79,),
}
#: The structures whose share of a prediction must stay small: the look-alikes a spine model confuses first.
OFF_TARGET_CRITICAL: tuple[str, ...] = ("heart", "aorta", "kidneys", "ribs", "scapulae", "sternum")


def get_label_map(label_map: str | Mapping | None) -> dict[int, int]:
    """Resolve a label-map name (case-insensitive) or a ``{source: target}`` mapping to ``dict[int, int]``.

    ``None`` means ``"verse"``. Raises ``ValueError`` for an unknown name or a non-integer / negative id.
    """
    if label_map is None:
        label_map = "verse"
    if isinstance(label_map, str):
        key = label_map.strip().lower()
        if key not in LABEL_MAPS:
            raise ValueError(f"unknown label map {label_map!r}; known: {sorted(LABEL_MAPS)} (or pass a dict)")
        return dict(LABEL_MAPS[key])
    if not isinstance(label_map, Mapping):
        raise ValueError(f"label map must be a name or a dict, got {type(label_map).__name__}")
    out: dict[int, int] = {}
    for k, v in label_map.items():
        try:
            src, dst = int(k), int(v)
        except (TypeError, ValueError):
            raise ValueError(f"label map entries must be integers, got {k!r}: {v!r}") from None
        if src < 0 or dst < 0:
            raise ValueError(f"label map ids must be non-negative, got {k!r}: {v!r}")
        out[src] = dst
    return out


def known_ids(label_map: str | Mapping | None) -> frozenset[int]:
    """The non-zero ids a label of this map may hold: the named convention's ids, or a dict's keys."""
    if isinstance(label_map, str) or label_map is None:
        get_label_map(label_map)    # an unknown name is a ValueError
        return KNOWN_IDS[(label_map or "verse").strip().lower()]
    return frozenset(src for src in get_label_map(label_map) if src != 0)


def label_map_name(label_map: str | Mapping | None) -> str:
    """How a message names the map: ``the 'verse' label map`` or ``the label map {27: 24, ...}``."""
    if isinstance(label_map, str) or label_map is None:
        return f"the {(label_map or 'verse').strip().lower()!r} label map"
    text = str(dict(get_label_map(label_map)))
    return f"the label map {text if len(text) <= 60 else text[:56] + ' ...}'}"


def lookup_table(label_map: str | Mapping | None = "verse", binary: bool = False) -> np.ndarray:
    """Return an int64 LUT of length ``max(source id) + 2``; its last entry (0) receives out-of-range values."""
    mapping = get_label_map(label_map)
    lut = np.zeros(max(mapping, default=0) + 2, dtype=np.int64)
    for src, dst in mapping.items():
        lut[src] = dst
    if binary:
        lut = (lut > 0).astype(np.int64)
    return lut


def remap(label_array, label_map: str | Mapping | None = "verse", binary: bool = False):
    """Map label values through ``label_map`` (then to {0, 1} if ``binary``); values not in the map -> 0.

    Works on numpy arrays and torch tensors (MetaTensor in -> MetaTensor out with the same meta, via
    ``monai.utils.convert_to_dst_type``); the output has the input's type, dtype, device and shape.
    Float inputs are rounded to the nearest integer before the look-up (labels loaded as float32).
    """
    from monai.utils import convert_to_dst_type

    lut_np = lookup_table(label_map, binary)
    n = len(lut_np)
    if isinstance(label_array, torch.Tensor):
        t = label_array.as_tensor() if hasattr(label_array, "as_tensor") else label_array
        idx = torch.round(t).long() if t.is_floating_point() else t.long()
        idx = torch.where((idx < 0) | (idx >= n - 1), n - 1, idx)
        out = torch.as_tensor(lut_np, device=t.device)[idx]
    else:
        arr = np.asarray(label_array)
        idx = np.rint(arr).astype(np.int64) if arr.dtype.kind == "f" else arr.astype(np.int64, copy=False)
        idx = np.where((idx < 0) | (idx >= n - 1), n - 1, idx)
        out = lut_np[idx]
    return convert_to_dst_type(out, dst=label_array, dtype=label_array.dtype)[0]
