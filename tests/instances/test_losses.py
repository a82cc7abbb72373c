"""Boundary weights, the FP-weight ramp, and the distillation losses (full Bernoulli KL, logit matching)."""
import math

import pytest
import torch

from scripts.instances.losses import (
    BoundaryWeightedFPFNLoss,
    DistillationLoss,
    DistillationPair,
    FPWeightRamp,
    HeatmapLoss,
    bernoulli_kl,
    boundary_weights,
    fp_weight_ramp,
)


def _cube():
    y = torch.zeros(1, 1, 20, 20, 20)
    y[..., 5:15, 5:15, 5:15] = 1
    return y


def test_boundary_weights_are_1_plus_8_exp_minus_d2_over_36():
    w = boundary_weights(_cube())[0, 0]
    assert w[10, 10, 5] == pytest.approx(1 + 8 * math.exp(-1 / 36), rel=1e-5)    # inside, 1 voxel from background
    assert w[10, 10, 4] == pytest.approx(1 + 8 * math.exp(-1 / 36), rel=1e-5)    # outside, 1 voxel from the target
    assert w[10, 10, 10] == pytest.approx(1 + 8 * math.exp(-25 / 36), rel=1e-5)  # centre, 5 voxels deep
    assert w[10, 10, 0] == pytest.approx(1 + 8 * math.exp(-25 / 36), rel=1e-5)   # 5 voxels outside


def test_fp_weight_ramp_goes_from_0_1_to_1_centred_at_a_third():
    assert fp_weight_ramp(0, 45) == pytest.approx(0.1 + 0.9 / (1 + math.exp(3.333)), rel=1e-3)
    assert fp_weight_ramp(15, 45) == pytest.approx(0.55)
    assert fp_weight_ramp(45, 45) > 0.99
    loss = BoundaryWeightedFPFNLoss()
    engine = type("E", (), {"state": type("S", (), {"epoch": 15, "max_epochs": 45})()})()
    FPWeightRamp(loss)(engine)
    assert loss.fp_weight == pytest.approx(0.55)
    kd = DistillationLoss()
    FPWeightRamp(kd)(engine)                                       # the ramp reaches the task loss inside KD
    assert kd.task_loss.fp_weight == pytest.approx(0.55)


def test_fp_fn_loss_weights_false_positives_by_lambda():
    y = _cube()
    w = boundary_weights(y)
    all_on, all_off = torch.full_like(y, 30.0), torch.full_like(y, -30.0)
    fp_sum = float((w * (1 - y)).mean())
    fn_sum = float((w * y).mean())
    assert BoundaryWeightedFPFNLoss(fp_weight=0.1)(all_on, y) == pytest.approx(0.1 * fp_sum, rel=1e-4)
    assert BoundaryWeightedFPFNLoss(fp_weight=1.0)(all_on, y) == pytest.approx(fp_sum, rel=1e-4)
    assert BoundaryWeightedFPFNLoss(fp_weight=0.1)(all_off, y) == pytest.approx(fn_sum, rel=1e-4)
    assert BoundaryWeightedFPFNLoss()(torch.where(y > 0, 30.0, -30.0), y) < 1e-6


def test_bernoulli_kl_keeps_both_terms():
    p, q = torch.tensor([0.9]), torch.tensor([0.6])
    full = 0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4)
    assert bernoulli_kl(p, q) == pytest.approx(full, rel=1e-5)
    assert bernoulli_kl(q, q) == pytest.approx(0.0, abs=1e-7)


def test_distillation_loss_soft_and_logits_modes():
    y = _cube()
    z_s, z_t = torch.randn_like(y), torch.randn_like(y)
    pred = torch.cat([z_s, z_t], 1)
    task = BoundaryWeightedFPFNLoss()(z_s, y)
    soft = DistillationLoss(mode="soft", temperature=10, alpha=0.5)(pred, y)
    kl = bernoulli_kl(torch.sigmoid(z_t / 10), torch.sigmoid(z_s / 10))
    assert soft == pytest.approx(float(0.5 * task + 0.5 * kl), rel=1e-5)
    logits = DistillationLoss(mode="logits", alpha=0.25)(pred, y)
    assert logits == pytest.approx(float(0.25 * task + 0.75 * torch.mean((z_s - z_t) ** 2)), rel=1e-5)
    with pytest.raises(ValueError, match="'soft' or 'logits'"):
        DistillationLoss(mode="hard")


def test_distillation_pair_freezes_the_teacher_and_is_a_plain_student_in_eval():
    student, teacher = torch.nn.Conv3d(2, 1, 1), torch.nn.Sequential(torch.nn.Conv3d(2, 1, 1), torch.nn.BatchNorm3d(1))
    pair = DistillationPair(student, teacher).train()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    x = torch.randn(1, 2, 4, 4, 4)
    out = pair(x)
    assert out.shape == (1, 2, 4, 4, 4)
    out.sum().backward()
    assert student.weight.grad is not None and teacher[0].weight.grad is None
    assert pair.eval()(x).shape == (1, 1, 4, 4, 4)


def test_heatmap_loss_is_zero_only_for_a_perfect_prediction():
    heat = torch.zeros(1, 1, 8, 8, 8)
    heat[..., 2:6, 2:6, 2:6] = 1.0
    target = torch.cat([heat, 1 - heat], 1)
    perfect = torch.cat([heat * 40 - 20, (1 - heat) * 40 - 20], 1)
    assert HeatmapLoss()(perfect, target) < 1e-3
    assert HeatmapLoss()(torch.zeros_like(target), target) > 0.3
