"""Slim UNETR (exact reference count, seed_architectures.md section 2.2) and the hypothesised Slim UNETR++ light/full
(section 2.4; the paper's own parameter count could not be verified, the counts here are our implementation's)."""
import pytest
import torch

from benchmarks.cost import matmul_macs, thop_style_macs
from scripts.networks import (
    NETWORKS,
    SlimUNETR,
    SlimUNETRPlusPlus,
    SlimUNETRPlusPlusLight,
    build_network,
    check_patch_size,
    patch_divisor,
)
from scripts.networks.epa import EPATransformerBlock
from scripts.networks.mednext_block import MedNeXtBlock
from scripts.networks.sca import SpatialChannelAttention
from tests.networks.conftest import n_params

BRATS = dict(in_channels=4, out_channels=3, img_size=(128, 128, 128))


def test_brats_configuration_has_the_reference_count():
    net = SlimUNETR(**BRATS, embed_dim=96, channels=(24, 48, 60), blocks=(1, 2, 3, 2), heads=(1, 2, 4, 4),
                    r=(4, 2, 2, 1), dropout=0.3, embedding_dim=64)
    assert n_params(net) == 1_783_425
    assert net.embedding_dim == 64 and net.position_embeddings.shape == (1, 64, 96)


def test_brats_macs_match_the_spec():
    # thop 12.39 GMACs at 1x4x128^3 (paper Table III: 12.42 GFLOPs); conv+matmul only 2.52 G
    assert thop_style_macs(SlimUNETR(**BRATS), (1, 4, 128, 128, 128)) / 1e9 == pytest.approx(12.39, abs=0.005)
    assert matmul_macs(SlimUNETR(**BRATS), (1, 4, 128, 128, 128)) / 1e9 == pytest.approx(2.52, abs=0.005)


def test_bundle_default_takes_the_spine_patch():
    net = SlimUNETR()  # in 1, out 1, img_size (128, 128, 64) -> 4 x 4 x 2 = 32 deepest tokens
    assert net.img_size == (128, 128, 64) and net.embedding_dim == 32
    assert n_params(net) == 1_772_667
    assert SlimUNETR(img_size=96).embedding_dim == 27  # the reference's hepatic-vessel configuration


def test_released_block_counts():
    assert [n_params(MedNeXtBlock(c)) for c in (24, 48, 60, 96)] == [13_224, 35_664, 50_340, 108_192]
    assert [n_params(EPATransformerBlock(64, c, 64, 4)) for c in (24, 48, 60, 96)] == [38_280, 140_424, 216_984,
                                                                                        548_616]
    assert [n_params(SpatialChannelAttention(64, c, 64, 4)) for c in (24, 96)] == [8_716, 77_836]


def test_plus_plus_counts_are_ours_not_the_papers():
    # The paper's count is unknown. Spec 2.4 hypothesises light 2,799,389 without SCA (reproduced exactly here);
    # with SCA its 2,877,229 / 6,667,909 are 4 more than ours because its SCA residual has 77,840 parameters,
    # while the released SCA block (spec 2.3, test above) has 77,836.
    assert n_params(SlimUNETRPlusPlusLight(**BRATS, sca=False)) == 2_799_389
    assert n_params(SlimUNETRPlusPlusLight(**BRATS)) == 2_877_225
    assert n_params(SlimUNETRPlusPlus(**BRATS)) == 6_667_905
    assert NETWORKS["slim_unetr_pp_light"] is SlimUNETRPlusPlusLight and NETWORKS["slim_unetr_pp"] is SlimUNETRPlusPlus
    assert SlimUNETRPlusPlusLight().light and not SlimUNETRPlusPlus().light


@pytest.mark.parametrize("name", ["slim_unetr", "slim_unetr_pp_light", "slim_unetr_pp"])
def test_forward_backward_returns_logits_of_input_size(name):
    torch.manual_seed(0)
    size = (64, 64, 32)
    net = build_network(name, out_channels=3, img_size=size)
    x = torch.randn(2, 1, *size)
    y = net(x)
    assert y.shape == (2, 3, *size)
    assert y.min() < 0 < y.max()
    y.mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]  # SCA's unused release temperature is frozen
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(not p.requires_grad for p in net.parameters()) == (0 if name == "slim_unetr" else 1)


def test_wrong_input_size_is_a_clear_error():
    net = SlimUNETR(img_size=(64, 64, 32)).eval()
    with pytest.raises(ValueError, match=r"built for img_size \[64, 64, 32\].*input of spatial size \[64, 64, 64\]"):
        net(torch.zeros(1, 1, 64, 64, 64))
    with pytest.raises(ValueError, match="embedding_dim 64 does not match img_size"):
        SlimUNETR(img_size=(128, 128, 64), embedding_dim=64)
    with pytest.raises(ValueError, match="divisible by 32"):
        SlimUNETR(img_size=(128, 128, 48))


def test_patch_size_rule():
    for name in ("slim_unetr", "slim_unetr_pp_light", "slim_unetr_pp"):
        assert patch_divisor(name) == 32
        check_patch_size(name, (128, 128, 64))
    with pytest.raises(ValueError, match="'slim_unetr_pp' needs every patch dimension divisible by 32"):
        check_patch_size("slim_unetr_pp", (96, 96, 48))
