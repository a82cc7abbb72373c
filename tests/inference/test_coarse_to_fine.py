"""The coarse-to-fine fast inference path (scripts/inference/): BatchNorm folding, its agreement with whole-volume
inference, its fallbacks, and inference.yaml's switch back to the paper's configuration."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer

from scripts.weights_sidecar import read_sidecar
from tests.conftest import BUNDLE

FINE = BUNDLE / "models" / "model.pt"
COARSE = BUNDLE / "models" / "coarse.pt"

# Fast path vs the paper's configuration on a lumbar phantom, same fine weights, judged against the phantom's label.
# The masks differ where windows sit (the box is tiled from its own corner), and a short CPU-trained model is
# sensitive to window placement, so the two masks are compared with the truth rather than with each other. Measured
# with the shipped 2 mm weights: fast 0.882, paper 0.665 (the two masks agree at 0.712), 0 paper voxels outside the
# box. The fast path must lose at most 0.02 against the paper's and stay >= 0.80 (losing one of the phantom's five
# vertebrae to a bad box costs ~0.2 and fails).
MAX_DICE_LOSS_VS_PAPER = 0.02
MIN_FAST_DICE = 0.80
MAX_LOST_OUTSIDE_BOX = 100
BOX_FRACTION_MAX = 0.6


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_net(seed=0):
    from scripts.networks import build_network

    torch.manual_seed(seed)
    net = build_network("spine_context_resunet", base_filters=4)
    for m in net.modules():  # non-trivial BatchNorm statistics, so folding has something to get wrong
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _meta(x: torch.Tensor, spacing=(1.0, 1.0, 1.0)) -> MetaTensor:
    aff = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    return MetaTensor(x, affine=aff[None])


def test_batchnorm_folding_keeps_outputs():
    from scripts.inference.fold_bn import fold_batchnorm

    net = _tiny_net()
    folded, n = fold_batchnorm(net)
    assert n == 20  # 14 conv->BN pairs in the residual blocks, 5 shortcuts... all 20 BatchNorms of the network
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())  # the original is left alone
    x = torch.randn(1, 1, 24, 24, 16)
    with torch.no_grad():
        ref, out = net(x), folded(x)
    assert torch.allclose(out, ref, atol=1e-4 * float(ref.abs().max())), float((out - ref).abs().max())


def _paper(x: MetaTensor, net, roi=(16, 16, 16), overlap=0.5) -> torch.Tensor:
    """The paper's configuration, as inference.yaml declares it: Spacingd to 1 mm, a Gaussian sliding window, sigmoid,
    Invertd back onto the native grid. Returns probabilities ``(C, *native)``."""
    from monai.transforms import Compose, Invertd, Spacingd

    pre = Compose([Spacingd(keys="image", pixdim=(1.0, 1.0, 1.0), mode="bilinear")])
    d = pre({"image": MetaTensor(x.as_tensor()[0], affine=x.affine.reshape(-1, 4, 4)[0])})
    logits = SlidingWindowInferer(roi, overlap=overlap, mode="gaussian")(d["image"][None], net)[0]
    d["pred"] = MetaTensor(torch.sigmoid(logits)).copy_meta_from(d["image"], copy_attr=False)
    d["pred"].applied_operations = list(d["image"].applied_operations)
    return Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=False)(d)["pred"].as_tensor()


def test_missing_coarse_weights_fall_back_to_the_papers_whole_volume(tmp_path, caplog):
    from scripts.inference.coarse_to_fine import CoarseToFineInferer

    net = _tiny_net()
    x = _meta(torch.randn(1, 1, 40, 36, 20), spacing=(0.8, 0.9, 2.0))
    with caplog.at_level(logging.WARNING):
        inferer = CoarseToFineInferer(roi_size=(16, 16, 16), overlap=0.5, coarse_network=_tiny_net(1),
                                      coarse_ckpt=str(tmp_path / "missing.pt"))
    assert "no coarse weights" in caplog.text and "whole volume" in caplog.text
    with torch.no_grad():
        out = inferer(x, net)
        paper = _paper(x, net)
    assert inferer.last_box == ([0, 0, 0], [40, 36, 20]) and out.shape == x.shape
    assert out.dtype == torch.float16  # the full-size logits are half precision (see out_dtype)
    # the same probabilities as the paper's pipeline, up to float16 (BatchNorm folded, channels-last, float32 grids)
    diff = float((torch.sigmoid(out.as_tensor().float()[0]) - paper).abs().max())
    assert diff < 2e-3, diff


def test_an_empty_coarse_mask_falls_back_to_the_whole_volume(tmp_path, caplog):
    from scripts.inference.coarse_to_fine import CoarseToFineInferer

    torch.save(_tiny_net(1).state_dict(), tmp_path / "coarse.pt")
    net = _tiny_net()
    x = _meta(torch.randn(1, 1, 48, 48, 32))
    kw = dict(roi_size=(16, 16, 16), overlap=0.5, coarse_ckpt=str(tmp_path / "coarse.pt"), coarse_roi_size=(8, 8, 8))
    empty = CoarseToFineInferer(coarse_network=_tiny_net(1), coarse_threshold=1.0, **kw)  # sigmoid never > 1
    with torch.no_grad(), caplog.at_level(logging.WARNING):
        out = empty(x, net)
        assert "found no spine" in caplog.text
        paper = _paper(x, net)
    assert empty.last_box == ([0, 0, 0], [48, 48, 32])
    assert float((torch.sigmoid(out.as_tensor().float()[0]) - paper).abs().max()) < 2e-3


class _Identity(torch.nn.Module):
    """A 'network' whose sliding-window output does not depend on where the windows sit: logits = the input."""

    def forward(self, x):
        return x.clone()


def test_the_box_is_resampled_on_the_papers_1mm_grid_and_back(tmp_path):
    """Inside the box, the fast path's grids are the paper's: with a window-independent network the probabilities
    equal the paper pipeline's (Spacingd -> window -> Invertd), voxel by voxel; outside the box it is background."""
    from scripts.inference.coarse_to_fine import CoarseToFineInferer

    coarse = _tiny_net(1)
    torch.save(coarse.state_dict(), tmp_path / "coarse.pt")
    torch.manual_seed(3)
    x = _meta(torch.randn(1, 1, 70, 60, 30) * 3, spacing=(0.78, 0.78, 1.25))
    fast = CoarseToFineInferer(roi_size=(16, 16, 16), overlap=0.5, coarse_network=_tiny_net(1),
                               coarse_ckpt=str(tmp_path / "coarse.pt"), coarse_threshold=0.0, margin_mm=0.0,
                               snap_mm=0.0)
    mask = torch.zeros(18, 15, 10, dtype=torch.bool)  # a 4 mm coarse mask: one blob, off-centre
    mask[5:8, 4:6, 2:5] = True
    fast.coarse_mask = lambda img: (mask, torch.diag(torch.tensor([4.0, 4.0, 4.0, 1.0], dtype=torch.float64)))
    with torch.no_grad():
        out = torch.sigmoid(fast(x, _Identity()).as_tensor().float()[0])
        paper = _paper(x, _Identity())
    start, end = fast.last_box
    assert all(0 < s < e < n for s, e, n in zip(start, end, x.shape[2:])), fast.last_box  # a real sub-box
    inner = tuple(slice(s + 2, e - 2) for s, e in zip(start, end))  # away from the box's faces (interpolation)
    diff = float((out[(slice(None), *inner)] - paper[(slice(None), *inner)]).abs().max())
    assert diff < 2e-3, diff
    outside = torch.ones_like(out, dtype=torch.bool)
    outside[(slice(None), *(slice(s, e) for s, e in zip(start, end)))] = False
    assert float(out[outside].max()) < 1e-6


@pytest.mark.slow  # both inference paths on a phantom (159 s measured)
def test_fast_path_mask_matches_the_papers_mask(tmp_path):
    """Shipped fine + coarse weights on a lumbar phantom on the fine model's grid (its sidecar's spacing):
    coarse-to-fine vs the paper's whole volume."""
    from scripts.data.phantom import generate_case
    from scripts.inference.coarse_to_fine import CoarseToFineInferer
    from scripts.weights_sidecar import build_network_from_sidecar

    assert COARSE.is_file(), "models/coarse.pt is shipped with the bundle"
    fine, coarse = read_sidecar(str(FINE)), read_sidecar(str(COARSE))
    spacing, roi = tuple(fine["spacing"]), tuple(fine["patch_size"])
    case = generate_case(7, spacing=spacing, shape=(96, 96, 48), orientation="RAS", levels=(20, 24))
    img = np.clip((case["image"].astype(np.float32) + 1000.0) / 1500.0 - 1.0, -1.0, 1.0)  # paper HU window
    x = _meta(torch.from_numpy(img)[None, None], spacing=spacing)
    net = build_network_from_sidecar(fine)
    net.load_state_dict(torch.load(FINE, map_location="cpu", weights_only=True))
    net.eval()
    fast = CoarseToFineInferer(roi_size=roi, overlap=0.5, coarse_network=build_network_from_sidecar(coarse),
                               coarse_ckpt=str(COARSE), spacing=spacing, coarse_spacing=coarse["spacing"])
    with torch.no_grad():
        m_fast = fast(x, net).as_tensor()[0, 0] > 0
        m_paper = _paper(x, net, roi=roi)[0] > 0.5
    start, end = fast.last_box
    box_fraction = float(np.prod(np.subtract(end, start))) / float(np.prod(img.shape))
    assert box_fraction < BOX_FRACTION_MAX, f"the coarse box {fast.last_box} is {box_fraction:.0%} of the volume"
    inside = torch.zeros_like(m_paper)
    inside[start[0]:end[0], start[1]:end[1], start[2]:end[2]] = True
    lost = int((m_paper & ~inside).sum())
    assert int((m_fast & ~inside).sum()) == 0 and lost <= MAX_LOST_OUTSIDE_BOX, lost
    inter = int((m_fast & m_paper).sum())
    dice = 2 * inter / max(1, int(m_fast.sum() + m_paper.sum()))
    assert int(m_paper.sum()) > 1000  # the fine model found the spine at all
    ref = torch.from_numpy(case["label"] > 0)
    d_fast = 2 * int((m_fast & ref).sum()) / max(1, int(m_fast.sum() + ref.sum()))
    d_paper = 2 * int((m_paper & ref).sum()) / max(1, int(m_paper.sum() + ref.sum()))
    assert d_fast >= d_paper - MAX_DICE_LOSS_VS_PAPER and d_fast >= MIN_FAST_DICE, (
        f"Dice against the phantom's label: fast {d_fast:.4f}, paper {d_paper:.4f} (fast vs paper {dice:.4f}), "
        f"box {fast.last_box}")


def _parse(**overrides):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.yaml"))
    parser.update({"bundle_root": str(BUNDLE), **overrides})
    return parser


def test_inference_yaml_defaults_to_the_fast_path_and_one_override_gives_the_papers():
    from scripts.inference.coarse_to_fine import CoarseToFineInferer

    fast = _parse()
    inferer = fast.get_parsed_content("inferer")
    names = [type(t).__name__ for t in fast.get_parsed_content("preprocessing").transforms]
    assert isinstance(inferer, CoarseToFineInferer) and inferer.coarse_to_fine
    assert inferer.coarse_network is not None and inferer.overlap == 0.5
    assert "Spacingd" not in names and "ScaleIntensityRanged" not in names  # both done inside the inferer
    assert inferer.probabilities and inferer.intensity is not None
    post = [type(t).__name__ for t in fast.get_parsed_content("postprocessing").transforms]
    assert "Activationsd" not in post

    paper = _parse(coarse_to_fine=False)
    inferer = paper.get_parsed_content("inferer")
    names = [type(t).__name__ for t in paper.get_parsed_content("preprocessing").transforms]
    assert names == ["LoadImaged", "Orientationd", "Spacingd", "ScaleIntensityRanged", "EnsureTyped"]
    post = [type(t).__name__ for t in paper.get_parsed_content("postprocessing").transforms]
    assert post[:2] == ["Activationsd", "Invertd"]
    assert inferer.coarse_network is None and inferer.overlap == 0.5 and inferer.mode == "gaussian"
    assert list(inferer.roi_size) == read_sidecar(str(FINE))["patch_size"]   # the weights' own patch
    # and it really is one sliding window over the whole input
    net, x = _tiny_net(), torch.randn(1, 1, 40, 40, 24)
    with torch.no_grad():
        ref = SlidingWindowInferer((16, 16, 16), overlap=0.5, mode="gaussian")(x, net)
        inferer.roi_size = (16, 16, 16)
        assert torch.equal(inferer(x, net), ref)


def test_largest_component_in_the_box_equals_monais_on_the_whole_volume():
    from monai.transforms import KeepLargestConnectedComponent

    from scripts.inference.postprocess import KeepLargestConnectedComponentInBoxd

    rng = np.random.default_rng(0)
    mask = torch.zeros(1, 60, 50, 40, dtype=torch.uint8)
    mask[:, 10:30, 10:30, 5:25] = torch.from_numpy(rng.random((1, 20, 20, 20)) > 0.3)  # several components
    mask[:, 40:45, 40:44, 30:33] = 1  # a small one far away
    ref = KeepLargestConnectedComponent(independent=True)(mask.clone())
    out = KeepLargestConnectedComponentInBoxd("pred", independent=True)({"pred": mask.clone()})["pred"]
    assert out.dtype == torch.uint8 and torch.equal(torch.as_tensor(out), torch.as_tensor(ref))
    assert 0 < int(out.sum()) < int(mask.sum())
    empty = torch.zeros(1, 8, 8, 8, dtype=torch.uint8)
    assert int(KeepLargestConnectedComponentInBoxd("pred")({"pred": empty})["pred"].sum()) == 0


def test_a_weak_bridge_away_from_the_confident_core_is_dropped_in_mm():
    """A confident column (0.9), a weak slab (0.6) touching it and running 10 mm away, and a weak blob off the column
    with its own small confident spot: at 2 mm voxels and a 4 mm margin, the slab keeps its first 2 voxels, the
    blob (another component) goes, and the column itself is untouched."""
    from scripts.inference.postprocess import KeepNearConfidentCored

    prob = torch.zeros(1, 20, 20, 30)
    prob[:, 8:12, 8:12, :] = 0.9                    # the spine: the largest confident component
    prob[:, 12:17, 8:12, 10:20] = 0.6               # a weak bridge on its face, 5 voxels = 10 mm deep
    prob[:, 0:4, 0:4, 0:4] = 0.6                     # a weak blob far away ...
    prob[:, 1, 1, 1] = 0.95                          # ... around a small confident spot of its own
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))
    out = KeepNearConfidentCored("pred", core_threshold=0.7, margin_mm=4.0)(
        {"pred": MetaTensor(prob.clone(), affine=affine)})["pred"]
    assert torch.equal(out[:, 8:12, 8:12, :], prob[:, 8:12, 8:12, :])
    assert torch.all(out[:, 12:14, 8:12, 10:20] == 0.6)       # 2 and 4 mm from the core: kept
    assert torch.all(out[:, 14:17, 8:12, 10:20] == 0)         # 6 mm and farther: dropped
    assert float(out[:, 0:4, 0:4, 0:4].sum()) == 0.0
    # the margin is in mm: at 1 mm voxels the same 4 mm keeps 4 voxels of the bridge
    out1 = KeepNearConfidentCored("pred", margin_mm=4.0)({"pred": MetaTensor(prob.clone(), affine=torch.eye(4))})["pred"]
    assert torch.all(out1[:, 12:16, 8:12, 10:20] == 0.6) and torch.all(out1[:, 16, 8:12, 10:20] == 0)
    # nothing confident: the map is left as it is
    weak = torch.full((1, 6, 6, 6), 0.6)
    assert torch.equal(KeepNearConfidentCored("pred")({"pred": weak.clone()})["pred"], weak)
    with pytest.raises(ValueError, match="one-channel"):
        KeepNearConfidentCored("pred")({"pred": torch.zeros(2, 4, 4, 4)})
    with pytest.raises(ValueError, match="core_threshold"):
        KeepNearConfidentCored("pred", core_threshold=1.5)


def test_a_box_face_near_the_image_face_is_moved_out_to_it():
    """The spine runs on through the field of view: a box face within ``snap_mm`` of the image's face goes out to
    it (ts_example_ct's clipped top vertebra fell outside otherwise); faces farther in stay where they are."""
    from scripts.inference.coarse_to_fine import CoarseToFineInferer

    inferer = CoarseToFineInferer(roi_size=(8, 8, 8), spacing=(2.0, 2.0, 2.0), margin_mm=0.0, snap_mm=20.0,
                                  coarse_to_fine=False)
    mask = torch.zeros(50, 50, 50, dtype=torch.bool)  # a 4 mm coarse mask on the grid of a 200 mm cube
    mask[20:30, 20:30, 2:40] = True                    # 8 mm from the bottom face, 40 mm from the top one
    coarse_affine = torch.diag(torch.tensor([4.0, 4.0, 4.0, 1.0], dtype=torch.float64))
    fine_affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    start, end = inferer.plan_box([100, 100, 100], fine_affine, (mask, coarse_affine))
    assert start[2] == 0 and end[2] == 79, (start, end)        # bottom snapped; top at the mask (~160 mm / 2 mm)
    assert (start[0], end[0]) == (39, 59), (start, end)       # x: ~80-120 mm, far from both faces


def test_an_aligned_box_sits_on_the_whole_volume_window_grid():
    """``align_windows``: the box starts at a multiple of the window stride and spans one window plus whole strides
    (or ends at the grid's face), so its windows are the whole-volume path's own."""
    from scripts.inference.coarse_to_fine import CoarseToFineInferer

    inferer = CoarseToFineInferer(roi_size=(16, 16, 16), overlap=0.5, spacing=(2.0, 2.0, 2.0), margin_mm=0.0,
                                  snap_mm=0.0, align_windows=True, coarse_to_fine=False)
    mask = torch.zeros(50, 50, 50, dtype=torch.bool)
    mask[11:19, 20:23, 13:44] = True
    coarse_affine = torch.diag(torch.tensor([4.0, 4.0, 4.0, 1.0], dtype=torch.float64))
    fine_affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    start, end = inferer.plan_box([100, 100, 100], fine_affine, (mask, coarse_affine))
    for s, e in zip(start, end):
        assert s % 8 == 0 and (e - s - 16) % 8 == 0 and e - s >= 16, (start, end)
    plain = CoarseToFineInferer(roi_size=(16, 16, 16), overlap=0.5, spacing=(2.0, 2.0, 2.0), margin_mm=0.0,
                                snap_mm=0.0, coarse_to_fine=False)
    p_start, p_end = plain.plan_box([100, 100, 100], fine_affine, (mask, coarse_affine))
    assert all(s <= ps and pe <= e for s, e, ps, pe in zip(start, end, p_start, p_end))  # it holds the plain box
