"""Step 2 samples: target = next vertebra, memory = every vertebra above it (or wiped), placement rules."""
import numpy as np
import pytest
import torch

from scripts.instances.levels import ANATOMICAL_ORDER, rank
from scripts.instances.sampling import VertebraInstancePatchd, crop_with_pad, level_weights_from_counts


def _column(ids=(18, 19, 28, 20, 21)):
    """A toy spine: boxes stacked head (high z) to feet, 20 voxels per level, ids in anatomical order."""
    lab = torch.zeros(1, 48, 48, 20 * len(ids) + 20, dtype=torch.uint8)
    for k, vid in enumerate(ids):
        z1 = lab.shape[-1] - 10 - 20 * k
        lab[0, 14:34, 14:34, z1 - 16:z1] = vid
    img = torch.where(lab > 0, 0.5, -0.5).to(torch.float32)
    return img, lab


def test_memory_is_every_vertebra_above_the_target_and_target_is_the_drawn_level():
    img, lab = _column()
    t = VertebraInstancePatchd(patch_size=(32, 32, 64), wipe_prob=0.0)
    t.set_random_state(1)
    seen = set()
    for _ in range(40):
        d = t({"image": img, "label": lab})
        r = d["vertebra_id"]
        seen.add(r)
        s = np.asarray(d["patch_start"])
        full_target = crop_with_pad((lab == r).float(), s, (32, 32, 64))
        assert torch.equal(d["label"], full_target)
        above = [v for v in (18, 19, 28, 20, 21) if rank(v) < rank(r)]
        want_mem = crop_with_pad(torch.isin(lab, torch.tensor(above, dtype=lab.dtype)).float(), s, (32, 32, 64))
        assert torch.equal(d["memory"], want_mem)
        assert not (d["memory"].bool() & d["label"].bool()).any()
        assert d["label"].sum() >= (lab == r).sum() / 3          # at least a third of the target inside
        assert d["image"].shape == d["memory"].shape == (1, 32, 32, 64)
    assert seen == {18, 19, 28, 20, 21}                            # T13 (28) sits between T12 and L1


def test_wiped_memory_rate_and_empty_memory_placement_puts_the_target_on_top():
    img, lab = _column()
    t = VertebraInstancePatchd(patch_size=(32, 32, 64), wipe_prob=0.3)
    t.set_random_state(0)
    wiped = eligible = 0
    for _ in range(300):
        d = t({"image": img, "label": lab})
        if d["vertebra_id"] != 18:
            eligible += 1
            wiped += d["memory_wiped"]
        if d["memory_wiped"] or d["vertebra_id"] == 18:
            assert d["memory"].sum() == 0
            # nothing above the target in the patch: its top is within 2 voxels of the patch's superior edge or cut
            zs = torch.nonzero(d["label"][0])[:, 2]
            above = d["image"][0][:, :, int(zs.max()) + 3:]
            assert not (above > 0).any()
    assert 0.22 <= wiped / eligible <= 0.38                       # p = 0.3, 300 draws: +-3.5 sd


def test_oversampling_weights_and_padding():
    w = level_weights_from_counts({1: 10, 20: 40, 21: 0})
    assert w == {1: 4.0, 20: 1.0}
    img, lab = _column(ids=(1, 20))
    t = VertebraInstancePatchd(patch_size=(32, 32, 64), wipe_prob=0.0, level_weights={1: 9.0, 20: 1.0})
    t.set_random_state(3)
    draws = [t({"image": img, "label": lab})["vertebra_id"] for _ in range(200)]
    assert 0.84 <= draws.count(1) / 200 <= 0.96                   # 9:1
    out = crop_with_pad(torch.zeros(1, 4, 4, 4), (-2, 0, 0), (4, 4, 4), pad_value=-1.0)
    assert (out[0, :2] == -1).all() and (out[0, 2:] == 0).all()
    with pytest.raises(ValueError, match="no vertebra"):
        t({"image": img, "label": torch.zeros_like(lab)})
    assert ANATOMICAL_ORDER.index(28) == 19
