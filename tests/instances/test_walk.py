"""The inference loop on a phantom, with an oracle in place of the step 2 network.

The oracle returns, inside the patch, the top-most reference vertebra that is not already in the memory, which is
what a perfect step 2 network does. The walk must then find every vertebra of the field of view once, top to bottom,
and never overwrite an accepted one; the heatmap comes from the step 1 target pipeline (64x64x128, resized back).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scripts.data.phantom import generate_case
from scripts.instances.heatmap import CentroidHeatmapd
from scripts.instances.levels import rank
from scripts.instances.walk import start_point, walk_spine

MIN_VOXELS = 200


def oracle(label_patch: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    ids = [int(v) for v in torch.unique(label_patch) if v > 0]
    for vid in sorted(ids, key=rank):
        m = label_patch == vid
        if (m & ~memory).sum() > max(m.sum() // 2, MIN_VOXELS):
            return m
    return torch.zeros_like(memory)


@pytest.fixture(scope="module")
def phantom():
    case = generate_case(11, spacing=(1.0, 1.0, 1.0), orientation="RAS", size_scale=0.6, levels=(17, 22))
    lab = torch.as_tensor(case["label"].astype(np.int64))
    heat64 = CentroidHeatmapd()({"label": lab[None]})["heatmap"][:1]
    heat = F.interpolate(heat64[None], size=lab.shape, mode="trilinear", align_corners=False)[0, 0]
    return lab, heat


@pytest.mark.slow  # its fixture generates a phantom (52 s measured with it)
def test_walk_finds_every_vertebra_once_top_to_bottom_and_never_overwrites(phantom):
    lab, heat = phantom
    present = {int(v): int((lab == v).sum()) for v in torch.unique(lab) if v > 0}
    expected = sorted([v for v, n in present.items() if n > MIN_VOXELS * 2], key=rank)
    assert len(expected) >= 5
    res = walk_spine(lab.to(torch.float32), heat, lambda ct, mem: oracle(ct.round().long(), mem),
                     patch_size=(128, 128, 128), min_voxels=MIN_VOXELS)
    inst = res.instances
    found = []
    for rec in res.records:
        k = rec["index"]
        ids, counts = torch.unique(lab[inst == k], return_counts=True)
        found.append(int(ids[counts.argmax()]))
        assert int((inst == k).sum()) == rec["voxels"]          # unchanged since acceptance: never overwritten
        assert rec["converged"]
    assert found == expected, res.stop_reason                   # each vertebra once, in anatomical order
    for k, vid in enumerate(found, start=1):                    # the segments are the vertebrae themselves
        inter = ((inst == k) & (lab == vid)).sum()
        assert 2 * inter / ((inst == k).sum() + (lab == vid).sum()) > 0.99


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_start_point_is_the_top_of_the_heatmap_and_a_cold_heatmap_finds_nothing(phantom):
    lab, heat = phantom
    x, y, z = start_point(heat, 0.3)
    assert heat[x, y, z] >= 0.3 and not (heat[:, :, z + 1:] >= 0.3).any()
    res = walk_spine(lab.float(), heat * 0.1, lambda ct, mem: oracle(ct.round().long(), mem))
    assert res.records == [] and "never reaches 0.3" in res.stop_reason
    with pytest.raises(ValueError, match="same shape"):
        walk_spine(lab.float(), heat[:-1], oracle)


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_walk_stops_when_the_segment_leaves_the_heatmap(phantom):
    lab, heat = phantom
    cold = heat.clone()
    cold[:, :, : lab.shape[2] // 2] = 0                          # the heatmap covers the upper half only
    res = walk_spine(lab.float(), cold, lambda ct, mem: oracle(ct.round().long(), mem), min_voxels=MIN_VOXELS)
    assert 1 <= len(res.records) < 6 and "left the spine heatmap" in res.stop_reason
