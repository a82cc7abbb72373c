"""The coarse-to-fine fast inference path (scripts/inference/): BatchNorm folding, its agreement with whole-volume
inference, its fallbacks, and inference.yaml's switch back to the paper's configuration."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer
from monai.data import MetaTensor

from tests.conftest import BUNDLE

FINE = BUNDLE / "models" / "model.pt"
COARSE = BUNDLE / "models" / "coarse.pt"

# Fast path vs whole volume, same fine weights, window size, overlap and resampling. The claim of the fast path is
# that the whole-volume mask has nothing outside the coarse box (asserted exactly). Inside the box the two differ only
# because the sliding windows sit at other places (the box is tiled from its own corner), and this small CPU-trained
# fine model is sensitive to window placement: measured Dice 0.940 between the two masks on this phantom (the
# reference Dice of both is ~0.6). 0.92 is that measurement less a margin for float/threading differences; losing one
# of the phantom's five vertebrae to a bad box would cost ~0.2 and fail it.
MIN_DICE_FAST_VS_WHOLE = 0.92


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def test_missing_coarse_weights_fall_back_to_the_whole_volume(tmp_path, caplog):
    from scripts.inference.coarse_to_fine import CoarseToFineInferer

    net = _tiny_net()
    x = _meta(torch.randn(1, 1, 40, 36, 20), spacing=(1.0, 1.0, 2.0))
    with caplog.at_level(logging.WARNING):
        inferer = CoarseToFineInferer(roi_size=(16, 16, 16), overlap=0.25, coarse_network=_tiny_net(1),
                                      coarse_ckpt=str(tmp_path / "missing.pt"), fold_bn=False)
    assert "no coarse weights" in caplog.text and "whole volume" in caplog.text
    with torch.no_grad():
        out = inferer(x, net)
        x1 = torch.nn.functional.interpolate(x.as_tensor(), size=(40, 36, 40), mode="trilinear")
        whole = SlidingWindowInferer((16, 16, 16), overlap=0.25, mode="gaussian")(x1, net)
        whole = torch.nn.functional.interpolate(whole, size=(40, 36, 20), mode="trilinear")
    assert inferer.last_box is None and out.shape == x.shape
    assert out.dtype == torch.float16  # the full-size logits are half precision (see out_dtype)
    assert torch.allclose(out.as_tensor().float(), whole, atol=5e-3)


def test_an_empty_coarse_mask_falls_back_to_the_whole_volume(tmp_path, caplog):
    from scripts.inference.coarse_to_fine import CoarseToFineInferer

    coarse = _tiny_net(1)
    torch.save(coarse.state_dict(), tmp_path / "coarse.pt")
    net = _tiny_net()
    x = _meta(torch.randn(1, 1, 48, 48, 32))
    kw = dict(roi_size=(16, 16, 16), overlap=0.25, coarse_ckpt=str(tmp_path / "coarse.pt"),
              coarse_roi_size=(8, 8, 8))
    empty = CoarseToFineInferer(coarse_network=_tiny_net(1), coarse_threshold=1.0, **kw)  # sigmoid never > 1
    found = CoarseToFineInferer(coarse_network=_tiny_net(1), coarse_threshold=0.0, margin_mm=0.0, **kw)
    with torch.no_grad(), caplog.at_level(logging.WARNING):
        out = empty(x, net)
        assert "found no spine" in caplog.text
        whole = SlidingWindowInferer((16, 16, 16), overlap=0.25, mode="gaussian")(x.as_tensor(), net)
    assert empty.last_box is None
    assert torch.allclose(out.as_tensor().float(), whole, atol=5e-3)
    with torch.no_grad():
        found(x, net)
    assert found.last_box == ([0, 0, 0], [48, 48, 32])  # everything above threshold 0: the box is the volume


def test_fast_path_mask_matches_the_whole_volume_mask(tmp_path):
    """Shipped fine + coarse weights on a lumbar phantom (1.5 mm native): coarse-to-fine vs whole volume at 1 mm."""
    from scripts.data.phantom import generate_case
    from scripts.inference.coarse_to_fine import CoarseToFineInferer
    from scripts.networks import build_network

    assert COARSE.is_file(), "models/coarse.pt is shipped with the bundle"
    case = generate_case(7, spacing=(1.5, 1.5, 1.5), shape=(128, 128, 64), orientation="RAS", levels=(20, 24))
    img = np.clip((case["image"].astype(np.float32) + 1000.0) / 1500.0 - 1.0, -1.0, 1.0)  # paper HU window
    x = _meta(torch.from_numpy(img)[None, None], spacing=(1.5, 1.5, 1.5))
    net = build_network("spine_context_resunet")
    net.load_state_dict(torch.load(FINE, map_location="cpu", weights_only=True))
    net.eval()
    kw = dict(roi_size=(128, 128, 64), overlap=0.25, coarse_network=build_network(base_filters=4),
              coarse_ckpt=str(COARSE), backend="onnxruntime")
    fast = CoarseToFineInferer(**kw)
    whole = CoarseToFineInferer(**{**kw, "coarse_ckpt": ""})  # the fallback: whole volume, same resampling
    with torch.no_grad():
        m_fast = fast(x, net).as_tensor()[0, 0] > 0
        m_whole = whole(x, net).as_tensor()[0, 0] > 0
    start, end = fast.last_box
    box_fraction = float(np.prod(np.subtract(end, start))) / float(np.prod(img.shape))
    assert box_fraction < 0.8, f"the coarse box {fast.last_box} is {box_fraction:.0%} of the volume"
    inside = torch.zeros_like(m_whole)
    inside[start[0]:end[0], start[1]:end[1], start[2]:end[2]] = True
    assert int((m_whole & ~inside).sum()) == 0 and int((m_fast & ~inside).sum()) == 0
    inter = int((m_fast & m_whole).sum())
    dice = 2 * inter / max(1, int(m_fast.sum() + m_whole.sum()))
    assert int(m_whole.sum()) > 1000  # the fine model found the spine at all
    assert dice >= MIN_DICE_FAST_VS_WHOLE, f"fast vs whole-volume Dice {dice:.4f}, box {fast.last_box}"


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
    assert inferer.coarse_network is not None and inferer.overlap == 0.25
    assert "Spacingd" not in names  # the fast path resamples inside the inferer

    paper = _parse(coarse_to_fine=False)
    inferer = paper.get_parsed_content("inferer")
    names = [type(t).__name__ for t in paper.get_parsed_content("preprocessing").transforms]
    assert names == ["LoadImaged", "Orientationd", "Spacingd", "ScaleIntensityRanged", "EnsureTyped"]
    assert inferer.coarse_network is None and inferer.overlap == 0.5 and inferer.mode == "gaussian"
    assert list(inferer.roi_size) == [128, 128, 64]
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
