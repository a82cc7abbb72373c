"""Exact parameter counts from ../shared/specs/seed_architectures.md section 1, plus shape/logit/gradient checks."""
import pytest
import torch

from scripts.networks import NETWORKS, ContextBlock, SpineContextResUNet, build_network, check_patch_size
from tests.networks.conftest import n_params

EXPECTED_PARAMS = {
    "spine_context_resunet": 1_703_841,
    "resunet": 1_424_545,
    "unet3d": 1_788_274,
    "swin_unetr": 3_746_536,
    # reference architecture (seed_architectures.md section 3) with the bundle's 1 output channel; with 5 outputs
    # it is the README's 21,716,235 (tests/networks/test_uc_3d_unet.py)
    "uc_3d_unet": 21_716_103,
    # reference architecture (section 2.2) at in 1, out 1, img_size 128x128x64 (32 position-embedding tokens); the
    # BraTS configuration's 1,783,425 is tested in tests/networks/test_slim_unetr.py
    "slim_unetr": 1_772_667,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_count_matches_reference(name):
    assert n_params(build_network(name)) == EXPECTED_PARAMS[name]


def test_every_registered_network_has_a_reference_count():
    # Slim UNETR++ has no verifiable reference count (the paper's number could not be retrieved and its encoder/
    # decoder code was never released): these are our own implementation's counts at the bundle defaults.
    own_counts = {"slim_unetr_pp_light": 2_734_371, "slim_unetr_pp": 6_525_051}
    assert set(NETWORKS) == set(EXPECTED_PARAMS) | set(own_counts)
    assert {name: n_params(build_network(name)) for name in own_counts} == own_counts


def test_context_block_holds_the_reported_share():
    # spec: context block 952,192 params (56 % of the net)
    net = SpineContextResUNet()
    assert isinstance(net.bottleneck, ContextBlock)
    assert n_params(net.bottleneck) == 952_192


@pytest.mark.parametrize("rates", [(1, 4, 8, 16), (1, 2, 3, 4), (1, 1, 1, 1)])
def test_dilation_rates_are_configurable(rates):
    net = SpineContextResUNet(dilations=rates)
    assert [b.dilation[0] for b in net.bottleneck.branches] == list(rates)
    assert [b.padding[0] for b in net.bottleneck.branches] == list(rates)
    assert n_params(net) == 1_703_841  # dilation changes the receptive field, not the weights


def test_bad_dilation_rate_is_rejected():
    with pytest.raises(ValueError, match="dilation"):
        SpineContextResUNet(dilations=(1, 0, 2, 4))


@pytest.mark.parametrize("name,size", [("spine_context_resunet", (32, 32, 16)), ("resunet", (24, 20, 16)),
                                       ("unet3d", (32, 32, 16)), ("swin_unetr", (64, 64, 32))])
def test_forward_backward_returns_logits_of_input_size(name, size):
    torch.manual_seed(0)
    net = build_network(name, out_channels=3)
    x = torch.randn(2, 1, *size)
    y = net(x)
    assert y.shape == (2, 3, *size)
    assert y.min() < 0  # logits: a sigmoid or softmax output would never be negative
    y.mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_non_divisible_size_is_resized_to_the_skip():
    net = build_network("spine_context_resunet").eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 20, 18, 12)).shape == (1, 1, 20, 18, 12)


def test_unknown_network_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown network 'vnet'.*resunet"):
        build_network("vnet")


def test_patch_size_rule_names_network_and_divisor():
    check_patch_size("spine_context_resunet", (128, 128, 64))
    with pytest.raises(ValueError, match="'swin_unetr' needs every patch dimension divisible by 32"):
        check_patch_size("swin_unetr", (128, 128, 48))


def test_channels_last_keeps_outputs_and_state_dict():
    """build_network(channels_last=True) computes what the channels-first network computes, with the same state_dict
    keys (the checkpoint loads into a plain network); every 3-D weight and the output are NDHWC."""
    import torch

    from scripts.networks import build_network

    torch.manual_seed(0)
    plain = build_network("spine_context_resunet", patch_size=(32, 32, 32)).eval()
    fast = build_network("spine_context_resunet", patch_size=(32, 32, 32), channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    assert list(fast.state_dict()) == list(plain.state_dict())
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        y_plain, y_fast = plain(x), fast(x)
    assert y_fast.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(y_plain, y_fast, atol=1e-4)
    assert all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in fast.parameters() if p.ndim == 5)
    build_network("spine_context_resunet", patch_size=(32, 32, 32)).load_state_dict(fast.state_dict())
