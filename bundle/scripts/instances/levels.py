"""VerSe vertebra ids in cranio-caudal order, and their names.

VerSe ids: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, and 28 for a thirteenth thoracic vertebra (T13), which sits between
T12 and L1. Walking "down" the spine therefore follows :data:`ANATOMICAL_ORDER`, not the numeric order of the ids.
"""
from __future__ import annotations

__all__ = ["ANATOMICAL_ORDER", "LEVEL_NAME", "rank", "name"]

ANATOMICAL_ORDER: tuple[int, ...] = tuple(range(1, 20)) + (28,) + tuple(range(20, 26))
LEVEL_NAME: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{i: f"T{i - 7}" for i in range(8, 20)},
    28: "T13",
    **{i: f"L{i - 19}" for i in range(20, 26)},
}
_RANK = {vid: k for k, vid in enumerate(ANATOMICAL_ORDER)}


def rank(vid: int) -> int:
    """Position of VerSe id ``vid`` from the top (C1 = 0); ValueError for a non-vertebra id."""
    try:
        return _RANK[int(vid)]
    except KeyError:
        raise ValueError(f"{vid} is not a VerSe vertebra id (1-25 or 28)") from None


def name(vid: int) -> str:
    """Anatomical name of a VerSe id, e.g. 20 -> 'L1'."""
    rank(vid)
    return LEVEL_NAME[int(vid)]
