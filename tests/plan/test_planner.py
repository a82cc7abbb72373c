"""Offline checks of the planner: the published test vectors of the spec (nnunet_plan.md, sections 2 and 9),
the closed-form "VRAM" estimate, the presets, axis handling, patch fitting to networks and the error messages."""
from __future__ import annotations

import numpy as np
import pytest

from scripts.plan.planner import (
    CPU_REFERENCE_VAL_3D,
    PRESETS,
    bundle_view,
    determine_fullres_target_spacing,
    estimate_feature_map_size,
    fit_patch_to_network,
    get_pool_and_conv_props,
    get_preset,
    network_divisor,
    pad_shape,
    plan_experiment,
)

from . import synth


def _fp(spacing, shape, n, labels):
    return synth.fake_fingerprint([spacing] * n, [shape] * n, labels)


def _fullres(plans):
    return plans["configurations"]["3d_fullres"]


def _strides(cfg):
    return cfg["architecture"]["arch_kwargs"]["strides"]


# ------------------------------------------------------------------------------------------- the spec's vectors
def test_spec_lists_the_vectors_used_here(specs_dir):
    text = (specs_dir / "nnunet_plan.md").read_text()
    for snippet in ("[80,160,160]", "[64,160,160]", "[112,224,224]", "[128,128,128]", "[2.391,1.49,1.49]",
                    "[192,192,192]", "[1.581,0.985,0.985]", "[48,192,192]", "[80,160,160]", "[80,64,64]",
                    "560 000 000", "680e6", "2100e6", "**0.05**", "1e-5"):
        assert snippet in text, snippet


def test_vector_synthct_2p5mm():
    """2.5x0.8x0.8 mm, 120x256x256, n=4, 6 classes (spec 2.1, 3, 9)."""
    fp = _fp([2.5, 0.8, 0.8], [120, 256, 256], 4, 6)
    plans = plan_experiment(fp, "nnunet_default")
    fr = _fullres(plans)
    assert fr["patch_size"] == [80, 160, 160] and fr["batch_size"] == 2
    assert fr["spacing"] == [2.5, 0.8, 0.8]  # 2.5 > 3 * 0.8 but 120 * 3 >= 256: median kept
    assert _strides(fr) == [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert fr["architecture"]["arch_kwargs"]["kernel_sizes"][0] == [1, 3, 3]
    assert fr["architecture"]["arch_kwargs"]["features_per_stage"] == [32, 64, 128, 256, 320, 320]
    assert set(plans["configurations"]) == {"3d_fullres"} and fr["batch_dice"] is False
    assert fr["normalization_schemes"] == ["CTNormalization"] and fr["use_mask_for_norm"] == [False]
    assert _fullres(plan_experiment(fp, "resenc_m"))["patch_size"] == [64, 160, 160]
    assert _fullres(plan_experiment(fp, "resenc_l"))["patch_size"] == [112, 224, 224]


def test_vector_thin_spine_lowres():
    """Thin spine CT: median 0.93x0.58x0.58 mm, 515x512x512, n=100, 26 classes (spec 9); the published lowres
    spacings come from the unrounded medians, hence the 0.5 % tolerance."""
    fp = _fp([0.93, 0.58, 0.58], [515, 512, 512], 100, 26)
    plans = plan_experiment(fp, "nnunet_default")
    fr, lr = _fullres(plans), plans["configurations"]["3d_lowres"]
    assert fr["patch_size"] == [128, 128, 128] and fr["batch_size"] == 2 and len(_strides(fr)) == 6
    assert lr["patch_size"] == [128, 128, 128]
    assert lr["spacing"] == pytest.approx([2.391, 1.49, 1.49], rel=5e-3)
    assert fr["batch_dice"] is True and lr["batch_dice"] is False and lr["next_stage"] == "3d_cascade_fullres"
    assert plans["configurations"]["3d_cascade_fullres"] == {"inherits_from": "3d_fullres",
                                                            "previous_stage": "3d_lowres"}
    big = plan_experiment(fp, "resenc_l")
    assert _fullres(big)["patch_size"] == [192, 192, 192]
    assert big["configurations"]["3d_lowres"]["spacing"] == pytest.approx([1.581, 0.985, 0.985], rel=5e-3)


def test_vector_thick_spine():
    """Thick-slice spine CT: strides of a [48,192,192] patch at 2.811x0.722x0.722 mm (spec 9), and a 60-case
    fingerprint with z 2.5-5 mm that reproduces fullres [48,192,192] / lowres [80,160,160] (checked against nnU-Net
    in test_nnunet_peer)."""
    _, strides, kernels, patch, div = get_pool_and_conv_props([2.811, 0.722, 0.722], [48, 192, 192])
    assert strides == [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    assert kernels[0] == [1, 3, 3] and patch == [48, 192, 192] and list(div) == [8, 32, 32]
    plans = plan_experiment(synth.planner_vectors()["thick_spine"], "nnunet_default")
    fr, lr = _fullres(plans), plans["configurations"]["3d_lowres"]
    assert fr["spacing"][0] == 2.5 and fr["spacing"][1:] == [0.722, 0.722]  # anisotropy rule: 10th percentile
    assert fr["patch_size"] == [48, 192, 192] and _strides(fr) == strides
    assert lr["patch_size"] == [80, 160, 160]


def test_vector_small_65_5():
    """n=10, 65.5x64x64 at 1 mm -> 80x64x64 (65.5 padded up to 80); bs 2 by the 5 % rule, 8 without it (ResEnc)."""
    fp = synth.planner_vectors()["small_65_5"]
    fr = _fullres(plan_experiment(fp, "nnunet_default"))
    assert fr["median_image_size_in_voxels"] == [65.5, 64.0, 64.0]
    assert fr["patch_size"] == [80, 64, 64] and fr["batch_size"] == 2
    for preset in ("resenc_m", "resenc_l"):
        fr = _fullres(plan_experiment(fp, preset))
        assert fr["patch_size"] == [80, 64, 64] and fr["batch_size"] == 8


def test_vector_512_300_lowres_iterations():
    """Spec 2.8: 512x512x300 at 1.0x0.7x0.7 mm -> fullres 96x160x160 bs 2; lowres after 24 x 1.03 steps at
    2.03x1.42x1.42 mm, median 148x252x252, patch 96x160x160."""
    plans = plan_experiment(_fp([1.0, 0.7, 0.7], [300, 512, 512], 2, 12), "nnunet_default")
    fr, lr = _fullres(plans), plans["configurations"]["3d_lowres"]
    assert fr["patch_size"] == [96, 160, 160] and fr["batch_size"] == 2
    assert lr["lowres_iterations"] == 24 and lr["patch_size"] == [96, 160, 160]
    assert lr["spacing"] == pytest.approx([2.03, 1.42, 1.42], abs=6e-3)
    assert lr["median_image_size_in_voxels"] == [148, 252, 252]


def test_anisotropy_rule_needs_both_conditions():
    spacings = [[3.0, 0.7, 0.7]] * 7 + [[2.5, 0.7, 0.7]] * 3  # median z 3.0 > 3 * 0.7
    few, many = [[20, 300, 300]] * 10, [[120, 300, 300]] * 10
    assert determine_fullres_target_spacing(spacings, few)[0] == pytest.approx(2.5)  # 10th percentile of z
    assert determine_fullres_target_spacing(spacings, many)[0] == 3.0  # 120 * 3 >= 300: the median stays
    # never finer than in-plane: a 10th percentile below max(in-plane) becomes max(in-plane) + 1e-5
    spacings = [[0.5, 0.7, 0.7]] * 2 + [[2.2, 0.7, 0.7]] * 8
    assert determine_fullres_target_spacing(spacings, few)[0] == pytest.approx(0.7 + 1e-5, abs=1e-9)


def test_pad_shape_and_topology_minimum_edge():
    assert list(pad_shape([65.5, 64, 64], [16, 16, 16])) == [80, 64, 64]
    assert list(pad_shape([64, 64, 64], 16)) == [64, 64, 64]
    n_pool, _, _, patch, _ = get_pool_and_conv_props([1, 1, 1], [20, 10, 7])
    assert n_pool == [1, 1, 0] and patch == [20, 10, 7]  # then one axis (10) left: < 3 * 4, stop


# ---------------------------------------------------------------------------------------------- VRAM estimate
@pytest.mark.parametrize("preset,patch,spacing,labels,expected", [
    # values of dynamic_network_architectures' compute_conv_feature_map_size (nnunetv2 2.8.1), checked by running it
    ("nnunet_default", [64, 128, 128], [1, 1, 1], 2, 225_370_112),
    ("nnunet_default", [64, 128, 128], [1, 1, 1], 26, 250_535_936),
    ("nnunet_default", [80, 160, 160], [2.5, 0.8, 0.8], 6, 556_688_000),
    ("nnunet_default", [24, 160, 128], [3, 0.7, 0.7], 3, 144_860_160),
    ("nnunet_default", [40, 48, 56], [1, 1, 1], 2, 22_901_760),
    ("resenc_m", [64, 128, 128], [1, 1, 1], 2, 277_794_816),
    ("resenc_m", [80, 160, 160], [2.5, 0.8, 0.8], 6, 761_032_000),
    ("resenc_m", [80, 64, 64], [1, 1, 1], 3, 87_004_160),
])
def test_feature_map_estimate_matches_nnunet(preset, patch, spacing, labels, expected):
    _, strides, _, patch, _ = get_pool_and_conv_props(spacing, patch)
    assert estimate_feature_map_size(patch, strides, labels, preset) == expected


def test_presets():
    assert set(PRESETS) == {"nnunet_default", "resenc_m", "resenc_l", "cpu"}
    assert PRESETS["nnunet_default"].reference == 560e6 and PRESETS["nnunet_default"].max_dataset_covered == 0.05
    assert PRESETS["resenc_m"].reference == 680e6 and PRESETS["resenc_m"].max_dataset_covered == 1
    assert PRESETS["resenc_l"].reference == 2100e6 and PRESETS["resenc_l"].gpu_memory_target_gb == 24
    assert get_preset("nnunet_default", gpu_memory_target_gb=16).reference == 1120e6
    with pytest.raises(ValueError, match="unknown plan preset 'huge'"):
        get_preset("huge")


def test_cpu_preset_budget_is_the_paper_window():
    """The cpu budget = nnU-Net's estimate of the paper's 128x128x64 (RAS) window at 1 mm with the 26-class head."""
    _, strides, _, patch, _ = get_pool_and_conv_props([1.0, 1.0, 1.0], [64, 128, 128])
    assert estimate_feature_map_size(patch, strides, 26, "nnunet_default") == CPU_REFERENCE_VAL_3D
    assert PRESETS["cpu"].reference == CPU_REFERENCE_VAL_3D
    for fp in (_fp([1.0, 1.0, 1.0], [400, 300, 300], 20, 26), _fp([0.93, 0.58, 0.58], [515, 512, 512], 100, 26),
               _fp([1.0, 1.0, 1.0], [400, 300, 300], 20, 2)):
        plans = plan_experiment(fp, "cpu")
        fr = _fullres(plans)
        assert fr["vram_estimate"] <= CPU_REFERENCE_VAL_3D
        assert np.prod(fr["patch_size"]) <= 128 * 128 * 64
        assert fr["batch_size"] == 2
        default = _fullres(plan_experiment(fp, "nnunet_default"))
        assert np.prod(fr["patch_size"]) < np.prod(default["patch_size"])


# ------------------------------------------------------------------------------------------------------ axes
def test_transpose_and_bundle_view_axes():
    """A data set whose coarse axis is x (fingerprint axis 2): nnU-Net transposes it first; the bundle view maps the
    plan back to RAS (x, y, z) = reversed fingerprint order."""
    fp = _fp([0.8, 0.8, 2.5], [256, 256, 120], 4, 6)  # (z, y, x): x is the 2.5 mm axis
    plans = plan_experiment(fp)
    assert plans["transpose_forward"] == [2, 0, 1] and plans["transpose_backward"] == [1, 2, 0]
    fr = _fullres(plans)
    assert fr["spacing"] == [2.5, 0.8, 0.8] and fr["patch_size"] == [80, 160, 160]  # transposed order
    view = bundle_view(plans)
    assert view["axis_order"] == "RAS (x, y, z)"
    assert view["spacing"] == [2.5, 0.8, 0.8]   # x, y, z
    assert view["patch_size"] == [80, 160, 160]
    # the usual axial case: fingerprint (z, y, x) -> RAS is the reverse
    view = bundle_view(plan_experiment(_fp([2.5, 0.8, 0.8], [120, 256, 256], 4, 6)))
    assert view["spacing"] == [0.8, 0.8, 2.5] and view["patch_size"] == [160, 160, 80]
    assert view["normalization"]["clip"] == [-50.0, 1200.0]
    assert view["normalization"]["b_min"] == pytest.approx((-50 - 300) / 250)


def test_target_spacing_override_and_gpu_target():
    fp = _fp([0.93, 0.58, 0.58], [515, 512, 512], 100, 26)
    plans = plan_experiment(fp, target_spacing=[2.0, 2.0, 2.0])
    assert _fullres(plans)["spacing"] == [2.0, 2.0, 2.0]
    assert _fullres(plans)["median_image_size_in_voxels"] == [239.0, 148.0, 148.0]
    small = _fullres(plan_experiment(fp, gpu_memory_target_gb=4))
    assert np.prod(small["patch_size"]) < 128 ** 3


def test_plan_errors():
    fp = _fp([1, 1, 1], [64, 64, 64], 3, 2)
    with pytest.raises(ValueError, match="num_labels not given"):
        plan_experiment({k: v for k, v in fp.items() if k != "labels"})
    with pytest.raises(ValueError, match="non-empty and of equal length"):
        plan_experiment({**fp, "spacings": []})
    with pytest.raises(ValueError, match="only 3D"):
        plan_experiment({**fp, "spacings": [[1, 1]] * 3, "shapes_after_crop": [[64, 64]] * 3})
    with pytest.raises(ValueError, match="target_spacing must be 3 positive"):
        plan_experiment(fp, target_spacing=[1, 0, 1])
    with pytest.raises(ValueError, match="plan has no configuration '3d_lowres'"):
        bundle_view(plan_experiment(fp), "3d_lowres")


# --------------------------------------------------------------------------------------- network divisibility
@pytest.mark.parametrize("name,divisor", [("spine_context_resunet", 8), ("resunet", 8), ("unet3d", 16),
                                          ("uc_3d_unet", 16), ("swin_unetr", 32), ("slim_unetr", 32)])
def test_network_divisors(name, divisor):
    from scripts.networks import NETWORKS

    if name not in NETWORKS:
        pytest.skip(f"network {name} is not registered (yet)")
    assert network_divisor(name) == divisor
    assert fit_patch_to_network([80, 160, 96], network=name) == [80 // divisor * divisor, 160, 96]


def test_fit_patch_to_network():
    assert fit_patch_to_network([80, 160, 160], divisor=32) == [64, 160, 160]
    assert fit_patch_to_network([80, 160, 160], divisor=32, mode="nearest") == [96, 160, 160]
    assert fit_patch_to_network([80, 160, 160], divisor=32, mode="ceil") == [96, 160, 160]
    assert fit_patch_to_network([20, 96, 96], network="swin_unetr") == [32, 96, 96]  # never below one divisor
    assert fit_patch_to_network([20, 96, 96], network="spine_context_resunet") == [16, 96, 96]
    assert fit_patch_to_network((128, 128, 64), network="unet3d") == [128, 128, 64]


@pytest.mark.parametrize("kwargs,match", [
    ({"divisor": 8, "network": "unet3d"}, "exactly one of divisor= or network="),
    ({}, "exactly one of divisor= or network="),
    ({"network": "vnet"}, "unknown network 'vnet'"),
    ({"divisor": 0}, "divisor must be a positive integer"),
    ({"divisor": 2.5}, "divisor must be a positive integer"),
    ({"divisor": 8, "mode": "up"}, "mode must be 'floor', 'nearest' or 'ceil'"),
    ({"divisor": 32, "max_voxels": 20 * 96 * 96}, r"cannot fit patch \[20, 96, 96\] to the network: multiples of 32"),
])
def test_fit_patch_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        fit_patch_to_network([20, 96, 96], **kwargs)
    assert "\n" not in str(err.value)


def test_fit_patch_rejects_bad_patch():
    with pytest.raises(ValueError, match="patch_size must be 3 positive sizes"):
        fit_patch_to_network([0, 96, 96], divisor=8)
    with pytest.raises(ValueError, match="patch_size must be 3 positive sizes"):
        fit_patch_to_network([96, 96], divisor=8)
