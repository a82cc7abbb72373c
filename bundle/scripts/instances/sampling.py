"""Step 2 training samples: a CT patch, the memory of the vertebrae above, and the next vertebra as target.

Following Serrador et al. (2024) ``train_segmentation.py`` (after Lessmann et al. 2019), for one scan and one
vertebra ``r`` present in it:

* target = (label == r); memory = every vertebra *above* r (cranial; anatomical order, so T13 sits between T12 and
  L1); with probability ``wipe_prob`` (0.3) the memory is emptied, which teaches the "first vertebra" case;
* placement: with an empty memory the patch's superior edge lies 2 voxels above r's top, lowered by U[0, 64) voxels,
  with U[-64, 64] shifts in x and y, so r is the top-most vertebra in the patch; with a memory, the patch is centred
  on r's centroid shifted by U[-32, 32] per axis; either way it is redrawn until at least ``min_inside`` (1/3) of
  r's voxels lie inside (up to ``max_tries``, then centred on r). The shifts are those of the paper's 128^3 patch and
  scale with other patch sizes (half and a quarter of the patch);
* ``r`` is drawn among the vertebrae of the scan with probability proportional to ``level_weights`` (the paper's
  max_count / count(r) oversampling of rare levels, count(r) = the training scans holding level r: set at the
  training's start by :class:`RareLevelOversampling`, configs/vertebrae_train.yaml's ``rare_level_oversampling``;
  uniform when not given);
* outside the scan the image is padded with ``pad_value`` (air: configs/vertebrae_train.yaml passes the HU
  window's ``b_min``) and the masks with 0.

Arrays are RAS (x, y, z) at 1 mm with z running head-wards, so "top" means the largest z; the paper's (P, R, I)
orientation is the same up to an axis permutation and flip.
"""
from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable

from ..data.datalist import load_image
from ..data.label_maps import remap
from ..flags import as_bool
from .levels import ANATOMICAL_ORDER, name, rank

logger = logging.getLogger(__name__)

__all__ = ["crop_with_pad", "VertebraInstancePatchd", "level_weights_from_counts", "count_levels", "rare_level_weights",
           "RareLevelOversampling"]


def crop_with_pad(arr: torch.Tensor, start: Sequence[int], size: Sequence[int], pad_value: float = 0) -> torch.Tensor:
    """``arr[..., start:start+size]`` over the last three axes; parts outside ``arr`` are filled with ``pad_value``."""
    spatial = arr.shape[-3:]
    out = torch.full((*arr.shape[:-3], *size), pad_value, dtype=arr.dtype)
    src, dst = [], []
    for s, n, dim in zip(start, size, spatial):
        lo, hi = max(int(s), 0), min(int(s) + int(n), int(dim))
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - int(s), hi - int(s)))
    out[(..., *dst)] = arr[(..., *src)]
    return out


def level_weights_from_counts(counts: Mapping[int, int]) -> dict[int, float]:
    """The paper's oversampling weights: ``max_count / count(r)`` for every level seen at least once."""
    counts = {int(k): int(v) for k, v in counts.items() if int(v) > 0}
    top = max(counts.values()) if counts else 0
    return {k: top / v for k, v in counts.items()}


def count_levels(items: Sequence[Mapping], label_key: str = "label", label_map="verse",
                 label_map_key: str = "label_map") -> dict[int, int]:
    """How many of the datalist entries ``items`` hold each VerSe level (ids of :data:`ANATOMICAL_ORDER`): each
    entry's label file is read once, its ids mapped through the entry's own ``label_map_key`` (else ``label_map``),
    as RemapLabelsd maps them for training."""
    counts = {v: 0 for v in ANATOMICAL_ORDER}
    for item in items:
        ids = np.unique(np.asarray(load_image(item[label_key])))
        lm = item.get(label_map_key) or label_map
        for v in {int(i) for i in np.unique(remap(ids, lm))} & set(ANATOMICAL_ORDER):
            counts[v] += 1
    return counts


def rare_level_weights(items: Sequence[Mapping], label_key: str = "label", label_map="verse") -> dict[int, float]:
    """The step 2 sampler's ``level_weights`` for the training scans ``items``: :func:`level_weights_from_counts` of
    :func:`count_levels` (the paper's oversampling: a level held by a quarter as many scans as the commonest one gets
    weight 4, so where both are in a scan it is drawn 4x as often)."""
    return level_weights_from_counts(count_levels(items, label_key, label_map))


class RareLevelOversampling:
    """Trainer handler: at the run's start (``Events.STARTED``), set ``sampler.level_weights`` to
    :func:`rare_level_weights` of the trainer's own training scans (``engine.data_loader.dataset.data``, the list
    after case validation; one rank's share under DDP). At the start, not when the config is parsed: parsing a
    config must not read (or generate) the data set. ``enabled`` false (``--oversample_rare_levels false``): the
    sampler keeps its weights (none: uniform draws) and no label is read. It logs the scans per level."""

    def __init__(self, sampler: VertebraInstancePatchd, enabled: bool = True, label_map="verse",
                 label_key: str = "label") -> None:
        self.sampler, self.label_map, self.label_key = sampler, label_map, label_key
        self.enabled = as_bool(enabled, "oversample_rare_levels")   # `--oversample_rare_levels false` is text

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine) -> None:
        if not self.enabled:
            return
        loader = getattr(engine, "data_loader", None) or engine.state.dataloader   # MONAI's trainer, or ignite's
        items = loader.dataset.data
        counts = count_levels(items, self.label_key, self.label_map)
        self.sampler.level_weights = level_weights_from_counts(counts)
        held = {name(v): n for v, n in counts.items() if n}
        logger.info("step 2 draws: rare levels oversampled (max_count / count) over %d training scans, scans per "
                    "level %s", len(items), held)


class VertebraInstancePatchd(Randomizable, MapTransform):
    """Turn ``{image, label}`` (channel-first, RAS, 1 mm; label = VerSe ids) into one step 2 sample:
    ``image`` (CT patch), ``memory_key`` (vertebrae above), ``label`` (the next vertebra), all ``patch_size``,
    plus ``"vertebra_id"`` (r), ``"memory_wiped"`` (bool) and ``"patch_start"``. With ``num_samples > 1`` it returns
    a list (MONAI's collate flattens it, as for ``RandCropByPosNegLabeld``)."""

    def __init__(self, image_key: str = "image", label_key: str = "label", memory_key: str = "memory",
                 patch_size: Sequence[int] = (128, 128, 128), wipe_prob: float = 0.3, min_inside: float = 1 / 3,
                 level_weights: Mapping | None = None, pad_value: float = -1.0, max_tries: int = 50,
                 num_samples: int = 1) -> None:
        MapTransform.__init__(self, [image_key, label_key])
        self.image_key, self.label_key, self.memory_key = image_key, label_key, memory_key
        self.patch_size = tuple(int(p) for p in patch_size)
        self.wipe_prob, self.min_inside, self.max_tries = float(wipe_prob), float(min_inside), int(max_tries)
        self.level_weights = {int(k): float(v) for k, v in (level_weights or {}).items()}
        self.pad_value = float(pad_value)
        self.num_samples = int(num_samples)

    def randomize(self, data=None) -> None:  # draws happen in __call__, where the scan is known
        pass

    def _draw_level(self, present: list[int]) -> int:
        w = np.asarray([self.level_weights.get(v, 1.0) for v in present], dtype=np.float64)
        return int(present[self.R.choice(len(present), p=w / w.sum())])

    def _start(self, coords: np.ndarray, centroid: np.ndarray, empty_memory: bool) -> np.ndarray:
        size = np.asarray(self.patch_size)
        if empty_memory:
            top = coords[:, 2].max()
            z_hi = top + 2 - self.R.randint(0, max(size[2] // 2, 1))   # the patch's top voxel
            xy = centroid[:2] + np.array([self.R.randint(-(n // 2), n // 2 + 1) for n in size[:2]])
            return np.array([round(xy[0]) - size[0] // 2, round(xy[1]) - size[1] // 2, z_hi + 1 - size[2]])
        c = centroid + np.array([self.R.randint(-(n // 4), n // 4 + 1) for n in size])
        return np.round(c).astype(int) - size // 2

    def __call__(self, data: Mapping[Hashable, object]) -> dict | list[dict]:
        """One sample, or a list of ``num_samples`` samples (each with its own vertebra) when it is above 1."""
        if self.num_samples > 1:
            return [self._sample(data) for _ in range(self.num_samples)]
        return self._sample(data)

    def _sample(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        image, label = d[self.image_key], d[self.label_key]
        lab = torch.as_tensor(label)
        present = sorted({int(v) for v in torch.unique(lab).tolist()} & set(ANATOMICAL_ORDER), key=rank)
        if not present:
            raise ValueError("VertebraInstancePatchd: the label holds no vertebra (VerSe ids 1-25, 28)")
        r = self._draw_level(present)
        above = [v for v in present if rank(v) < rank(r)]
        wiped = bool(above) and self.R.rand() < self.wipe_prob
        if wiped:
            above = []
        target = lab == r
        coords = torch.nonzero(target[0]).numpy()
        centroid = coords.mean(0)
        size = np.asarray(self.patch_size)
        start = None
        for _ in range(self.max_tries):
            s = self._start(coords, centroid, empty_memory=not above)
            inside = np.all((coords >= s) & (coords < s + size), axis=1).mean()
            if inside >= self.min_inside:
                start = s
                break
        if start is None:
            start = np.round(centroid).astype(int) - size // 2
        memory = torch.isin(lab, torch.as_tensor(above, dtype=lab.dtype)) if above else torch.zeros_like(target)
        d[self.image_key] = crop_with_pad(torch.as_tensor(image), start, self.patch_size, self.pad_value)
        d[self.memory_key] = crop_with_pad(memory.to(torch.float32), start, self.patch_size, 0.0)
        d[self.label_key] = crop_with_pad(target.to(torch.float32), start, self.patch_size, 0.0)
        d["vertebra_id"], d["memory_wiped"], d["patch_start"] = r, wiped, [int(v) for v in start]
        return d
