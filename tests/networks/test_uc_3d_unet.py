"""uC 3DU-Net: exact reference parameter and MAC counts (seed_architectures.md section 3), axial slice-wise
U-shaped connections, logits/gradients, and the patch-size rule."""
import pytest
import torch

from benchmarks.cost import matmul_macs, thop_style_macs
from scripts.networks import NETWORKS, UC3DUNet, build_network, check_patch_size, patch_divisor
from scripts.networks.u_shaped_connection import DFi, UShapedConnection
from tests.networks.conftest import n_params

SMALL = (4, 8, 16, 32, 64, 8)


def test_parameter_count_is_the_reference_count():
    net = UC3DUNet(in_channels=1, out_channels=5)  # the OIMHS instantiation of the paper's README
    assert n_params(net) == 21_716_235
    assert [n_params(u) for u in net.ucs] == [4_364_280, 4_312_560, 4_106_592]
    assert n_params(UC3DUNet(1, 2)) == 21_716_136 and n_params(UC3DUNet(1, 14)) == 21_716_532
    assert NETWORKS["uc_3d_unet"] is UC3DUNet


def test_dfi_parameter_formula():
    for c in (48, 96, 192):
        assert n_params(DFi(c)) == 2 * c * c + 2 * c + 2


def test_macs_at_96_cubed_match_the_paper():
    # README / cost.py of IMOP-lab/U-Shaped-Connection: thop, 1x1x96^3 input, 5 classes -> 286.43 G
    macs = thop_style_macs(UC3DUNet(1, 5), (1, 1, 96, 96, 96))
    assert macs / 1e9 == pytest.approx(286.43, abs=0.005)
    # conv + matmul only (FlopCounterMode): 247.1 G per the spec
    assert matmul_macs(UC3DUNet(1, 5), (1, 1, 96, 96, 96)) / 1e9 == pytest.approx(247.11, abs=0.005)


def test_u_shaped_connection_treats_each_axial_slice_independently():
    # RAS: axis 2 (the last) is inferior-superior, so planes of constant axis 2 are axial slices.
    torch.manual_seed(0)
    uc = UShapedConnection((4, 8, 16)).eval()
    x = torch.randn(1, 4, 16, 16, 6)
    x2 = x.clone()
    x2[0, :, 3, 5, 2] += 5.0  # one voxel of axial slice 2
    with torch.no_grad():
        diff = (uc(x2) - uc(x)).abs().amax(dim=(0, 1))  # (16, 16, 6)
    changed_slices = (diff.amax(dim=(0, 1)) > 0).nonzero().flatten().tolist()
    assert changed_slices == [2]
    # ... and within that slice the 2D U-Net mixes in-plane: a voxel far away along axes 0 and 1 changes too
    assert diff[15, 15, 2] > 0 and diff[0, 15, 2] > 0


def test_whole_network_uses_axial_slices_in_its_skips():
    torch.manual_seed(0)
    net = UC3DUNet(1, 2, features=SMALL).eval()
    seen = {}
    net.ucs[0].unet.register_forward_hook(lambda m, a, o: seen.update(shape=tuple(a[0].shape)))
    with torch.no_grad():
        net(torch.randn(1, 1, 32, 16, 48))
    assert seen["shape"] == (48, 4, 32, 16)  # batch = the 48 slices along axis 2, planes = (axis 0, axis 1)


@pytest.mark.parametrize("features,size", [((24, 48, 96, 192, 384, 32), (32, 32, 16)), (SMALL, (40, 24, 24))])
def test_forward_backward_returns_logits_of_input_size(features, size):
    torch.manual_seed(0)
    net = UC3DUNet(1, 3, features=features)
    x = torch.randn(1, 1, *size)
    y = net(x)
    assert y.shape == (1, 3, *size)
    assert y.min() < 0 < y.max()
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_patch_size_rule():
    assert patch_divisor("uc_3d_unet") == 16
    check_patch_size("uc_3d_unet", (128, 128, 64))
    check_patch_size("uc_3d_unet", (96, 96, 96))
    with pytest.raises(ValueError, match="'uc_3d_unet' needs every patch dimension divisible by 16"):
        check_patch_size("uc_3d_unet", (128, 128, 72))
    assert isinstance(build_network("uc_3d_unet", out_channels=26), UC3DUNet)
