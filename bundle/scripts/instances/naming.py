"""Anatomical names for the vertebrae found by the walk (which numbers them 1..n, top first).

The walk gives a sequence of consecutive vertebrae, so naming reduces to one unknown: the VerSe id of the first one.
We score every admissible start level ``s`` by the likelihood of two observations per vertebra and keep the best
(the maximum-likelihood relabelling of the whole sequence that Lessmann et al. 2019 use, with other features):

    s* = argmax_s  sum_i [ log N(log V_i ; mu[s + i], sd[s + i]) + log P(rib_i | level s + i) ]

* ``V_i``, the volume: vertebrae grow cranio-caudally (C3 about 14 cm^3, L4 about 70 cm^3 in the phantoms), a
  per-level log-normal model;
* ``rib_i``, whether bone that is not vertebra lies right beside the vertebra (within 25 mm lateral to its
  left-right extent, over its own z and y range; :func:`rib_flags`): ribs articulate with T1-T12 only, so this
  anchors the sequence wherever the field of view holds a cervico-thoracic or thoraco-lumbar transition.
  ``P(rib | thoracic) = 0.9`` and ``P(rib | other) = 0.05``.

Measured on ground-truth instances of phantoms (1 mm, full field of view): the fraction of vertebrae named right was
0.17 from volume alone and 0.51 / 0.54 with the rib cue (seeds 2000-2019, where the flag threshold 0.03 and the
probabilities were chosen among 12 settings / seeds 2020-2039, held out). Most errors are off by one level inside a
run of thoracic vertebrae with no transition in view.

Levels follow the anatomical order C1..C7, T1..T12, L1..L5 (L6 and T13 are not proposed: too rare to be named from
size alone). The model (``mu``, ``sd`` of log mm^3 per level) is fitted on training labels with
:func:`fit_level_model`; :data:`DEFAULT_LEVEL_MODEL` was fitted on 40 phantoms of the bundle's generator at 1 mm (seeds 1000-1039,
size_scale 1; the first and last vertebra of each field of view left out). C1 and L5 are never interior there,
so their entries copy C2 and L4 with a wide sd.
Partially visible vertebrae at the edges of the field of view are smaller than their level's mean, so the first and
last vertebra of the sequence are ignored in the score when the sequence has at least four.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .levels import ANATOMICAL_ORDER, name

__all__ = ["NAMED_LEVELS", "DEFAULT_LEVEL_MODEL", "fit_level_model", "assign_levels", "load_level_model", "rib_flags",
           "level_names"]

#: Levels proposed by the naming, top to bottom (C1..L5).
NAMED_LEVELS: tuple[int, ...] = tuple(range(1, 25))

#: {verse_id: (mean, sd) of log(volume in mm^3)}; regenerate with ``fit_level_model`` (see module docstring).
DEFAULT_LEVEL_MODEL: dict[int, tuple[float, float]] = {
    1: (9.884, 0.457), 2: (9.884, 0.23), 3: (9.518, 0.131), 4: (9.515, 0.173), 5: (9.609, 0.133), 6: (9.666, 0.115),
    7: (9.92, 0.148), 8: (9.964, 0.122), 9: (9.944, 0.192), 10: (10.026, 0.162), 11: (9.93, 0.401), 12: (10.147, 0.153),
    13: (10.118, 0.414), 14: (10.107, 0.406), 15: (10.142, 0.457), 16: (10.204, 0.391), 17: (10.411, 0.173), 18: (10.339, 0.35),
    19: (10.585, 0.217), 20: (10.824, 0.249), 21: (11.063, 0.16), 22: (11.138, 0.152), 23: (11.199, 0.147), 24: (11.199, 0.457),
}


def fit_level_model(volumes: Iterable[Mapping[int, float]], min_sd: float = 0.08) -> dict[int, tuple[float, float]]:
    """Fit ``{id: (mean, sd)}`` of log volume from per-case ``{verse_id: volume_mm3}`` dicts. Levels never seen are
    filled by linear interpolation of the neighbours' means (sd = the largest sd seen)."""
    logs: dict[int, list[float]] = {}
    for case in volumes:
        for vid, vol in case.items():
            if int(vid) in NAMED_LEVELS and float(vol) > 0:
                logs.setdefault(int(vid), []).append(float(np.log(float(vol))))
    if len(logs) < 2:
        raise ValueError(f"need volumes of at least two levels to fit the level model, got {sorted(logs)}")
    seen = sorted(logs)
    sds = {v: max(float(np.std(logs[v])), min_sd) for v in seen}
    means = np.interp(NAMED_LEVELS, seen, [float(np.mean(logs[v])) for v in seen])
    top_sd = max(sds.values())
    return {v: (float(m), sds.get(v, top_sd)) for v, m in zip(NAMED_LEVELS, means)}


def load_level_model(path: str | None = None) -> dict[int, tuple[float, float]]:
    """The model saved as JSON ``{id: [mean, sd]}`` at ``path``, or the default one."""
    if not path:
        if not DEFAULT_LEVEL_MODEL:
            raise ValueError("no level model: fit one with fit_level_model and pass its JSON path")
        return dict(DEFAULT_LEVEL_MODEL)
    with open(path) as f:
        return {int(k): (float(v[0]), float(v[1])) for k, v in json.load(f).items()}


def rib_flags(ct: np.ndarray, instances: np.ndarray, bone_threshold: float, gap: int = 3, width: int = 25,
              min_fraction: float = 0.03) -> list[bool]:
    """For instances 1..n of a 1 mm RAS volume: is more than ``min_fraction`` of a ``width``-voxel slab beside the
    vertebra (``gap`` voxels beyond its left or right extent, over its own y and z range) bone (ct > threshold)
    that belongs to no vertebra?"""
    ct, instances = np.asarray(ct), np.asarray(instances)
    flags = []
    for k in range(1, int(instances.max(initial=0)) + 1):
        idx = np.nonzero(instances == k)
        if len(idx[0]) == 0:
            flags.append(False)
            continue
        (x0, y0, z0), (x1, y1, z1) = [i.min() for i in idx], [i.max() + 1 for i in idx]
        best = 0.0
        for a, b in ((x0 - gap - width, x0 - gap), (x1 + gap, x1 + gap + width)):
            a, b = max(a, 0), min(b, ct.shape[0])
            if b > a:
                sl = (slice(a, b), slice(y0, y1), slice(z0, z1))
                best = max(best, float(((ct[sl] > bone_threshold) & (instances[sl] == 0)).mean()))
        flags.append(best > min_fraction)
    return flags


P_RIB = {True: 0.90, False: 0.05}  # P(rib flag | thoracic level), P(rib flag | other level)


def assign_levels(volumes_mm3: Sequence[float], model: Mapping[int, Sequence[float]],
                  ribs: Sequence[bool] | None = None) -> tuple[list[int], list[float]]:
    """VerSe ids for a top-to-bottom sequence of vertebra volumes, and the log-likelihood of every start level.

    Returns ``(ids, scores)``: ``ids[i]`` is the id of the i-th vertebra; ``scores[k]`` the score of starting at
    ``NAMED_LEVELS[k]`` (-inf where the sequence would run past L5). A sequence longer than C1..L5 is named
    C1 onwards and its overflow gets the ids after L5 in :data:`ANATOMICAL_ORDER`."""
    n = len(volumes_mm3)
    if n == 0:
        return [], []
    logv = np.log(np.maximum(np.asarray(volumes_mm3, dtype=np.float64), 1.0))
    scored = range(1, n - 1) if n >= 4 else range(n)
    levels = list(NAMED_LEVELS)
    scores = []
    for s in range(len(levels)):
        if s + n > len(levels):
            scores.append(float("-inf"))
            continue
        ll = 0.0
        for i in scored:
            mu, sd = model[levels[s + i]]
            ll += -0.5 * ((logv[i] - mu) / sd) ** 2 - np.log(sd)
        for i, rib in enumerate(ribs or ()):
            p = P_RIB[8 <= levels[s + i] <= 19]
            ll += float(np.log(p if rib else 1.0 - p))
        scores.append(float(ll))
    if n > len(levels):
        if n > len(ANATOMICAL_ORDER):
            raise ValueError(f"{n} vertebrae is more than a spine has ({len(ANATOMICAL_ORDER)} VerSe ids)")
        return list(ANATOMICAL_ORDER[:n]), scores
    best = int(np.argmax(scores))
    return levels[best:best + n], scores


def level_names(ids: Sequence[int]) -> list[str]:
    return [name(v) for v in ids]
