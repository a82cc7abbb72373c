"""Losses of the two-step vertebra-instance method and of its knowledge distillation.

* :class:`HeatmapLoss` (step 1): KL divergence(target || prediction) over the two softmax channels plus (1 - soft
  Dice), as ``train_heatmap_utils.py``.
* :class:`BoundaryWeightedFPFNLoss` (step 2, Lessmann et al. 2019): with ``d`` the distance of each voxel to the
  target's boundary and ``w = 1 + 8 exp(-d^2 / 36)``, ``FP = sum w (1 - y) p`` and ``FN = sum w y (1 - p)``;
  ``L = lambda * FP + FN``. The sums are divided by the number of voxels (a per-voxel mean) so the loss has the same
  scale as the distillation term it is mixed with; this does not change the optimum. :class:`FPWeightRamp` sets
  ``lambda(e) = 0.1 + 0.9 / (1 + exp(-(e - E/3) / (E/10)))`` at the start of every epoch.
* :class:`DistillationLoss` (Serrador et al. 2024): ``alpha * L_task(y, s) + (1 - alpha) * L_KD`` where ``L_KD`` is
  either the full Bernoulli KL between the teacher's and the student's sigmoid outputs at temperature ``T``
  (``mode="soft"``; Keras' one-channel KLDivergence drops the (1 - p) term, we keep it) or the mean squared
  difference of the logits (``mode="logits"``). It reads the output of :class:`DistillationPair`, the student's and
  the frozen teacher's logits stacked on the channel axis.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from monai.transforms import DistanceTransformEDT
from torch import nn
from torch.nn.modules.loss import _Loss

__all__ = ["boundary_weights", "fp_weight_ramp", "HeatmapLoss", "BoundaryWeightedFPFNLoss", "FPWeightRamp",
           "bernoulli_kl", "DistillationPair", "DistillationLoss"]


def boundary_weights(target: torch.Tensor, amplitude: float = 8.0, scale: float = 36.0) -> torch.Tensor:
    """``1 + amplitude * exp(-d^2 / scale)`` with ``d`` the Euclidean distance (voxels) to the target's boundary:
    the distance to the nearest background voxel inside, to the nearest target voxel outside. ``target``:
    (B, 1, ...) binary. An empty (or full) target gives d = 0 on one side only, which is what EDT returns."""
    edt = DistanceTransformEDT()
    out = torch.empty_like(target, dtype=torch.float32)
    for b in range(target.shape[0]):
        y = (target[b].detach().cpu() > 0.5).to(torch.float32)
        d = torch.as_tensor(edt(y)) + torch.as_tensor(edt(1.0 - y))
        out[b] = (1.0 + amplitude * torch.exp(-(d**2) / scale)).to(out.device)
    return out


def fp_weight_ramp(epoch: int, max_epochs: int, start: float = 0.1, end: float = 1.0) -> float:
    """The false-positive weight of epoch ``epoch`` (1-based) of ``max_epochs``: a sigmoid from ``start`` to ``end``
    centred at a third of the training, width a tenth."""
    e, big_e = float(epoch), float(max(int(max_epochs), 1))
    return start + (end - start) / (1.0 + math.exp(-(e - big_e / 3.0) / (big_e / 10.0)))


class BoundaryWeightedFPFNLoss(_Loss):
    """``fp_weight * FP + FN`` on sigmoid outputs with boundary weights; see the module docstring."""

    def __init__(self, fp_weight: float = 0.1, amplitude: float = 8.0, scale: float = 36.0) -> None:
        super().__init__()
        self.fp_weight, self.amplitude, self.scale = float(fp_weight), float(amplitude), float(scale)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        y = (target > 0.5).to(p.dtype)
        w = boundary_weights(y, self.amplitude, self.scale).to(p.device)
        dims = tuple(range(1, p.ndim))
        fp = (w * (1 - y) * p).mean(dims)
        fn = (w * y * (1 - p)).mean(dims)
        return (self.fp_weight * fp + fn).mean()


class FPWeightRamp:
    """Ignite handler: set ``loss.fp_weight = fp_weight_ramp(epoch, max_epochs)`` when each epoch starts."""

    def __init__(self, loss: nn.Module, max_epochs: int | None = None) -> None:
        self.loss, self.max_epochs = loss, max_epochs

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine) -> None:
        target = getattr(self.loss, "task_loss", self.loss)
        target.fp_weight = fp_weight_ramp(engine.state.epoch, self.max_epochs or engine.state.max_epochs)


class HeatmapLoss(_Loss):
    """KL(target || softmax(logits)) summed over channels and averaged over voxels, plus (1 - soft Dice)."""

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = float(eps)
        self.dice = DiceLoss(softmax=True, include_background=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_q = F.log_softmax(logits, dim=1)
        t = target.clamp_min(self.eps)
        kl = (target * (torch.log(t) - log_q)).sum(1).mean()
        return kl + self.dice(logits, target)


def bernoulli_kl(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Mean over voxels of KL(Bernoulli(p) || Bernoulli(q)) = p log(p/q) + (1-p) log((1-p)/(1-q))."""
    p = p.clamp(eps, 1 - eps)
    q = q.clamp(eps, 1 - eps)
    return (p * (torch.log(p) - torch.log(q)) + (1 - p) * (torch.log1p(-p) - torch.log1p(-q))).mean()


class DistillationPair(nn.Module):
    """The student being trained next to a frozen teacher.

    In training mode ``forward`` returns ``cat([student logits, teacher logits], 1)`` for :class:`DistillationLoss`;
    in eval mode it returns the student's logits only, so validation and inference see a plain network. The teacher
    stays in eval mode (BatchNorm statistics frozen) and receives no gradient.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z_s = self.student(x)
        if not self.training:
            return z_s
        with torch.no_grad():
            z_t = self.teacher(x)
        return torch.cat([z_s, z_t], 1)


class DistillationLoss(_Loss):
    """``alpha * task_loss(z_s, y) + (1 - alpha) * L_KD(z_t, z_s)`` on :class:`DistillationPair` outputs.

    Args:
        task_loss: the student's own loss (default :class:`BoundaryWeightedFPFNLoss`; its ``fp_weight`` is ramped by
            :class:`FPWeightRamp` when that handler is given this loss).
        mode: ``"soft"`` (Bernoulli KL between sigmoid(z_t / T) and sigmoid(z_s / T)) or ``"logits"`` (MSE of logits).
        temperature: T of the soft mode (the public code's unit test uses 10).
        alpha: weight of the task loss (0.5 in the public code).
    """

    def __init__(self, task_loss: nn.Module | None = None, mode: str = "soft", temperature: float = 10.0,
                 alpha: float = 0.5) -> None:
        super().__init__()
        if mode not in ("soft", "logits"):
            raise ValueError(f"distillation mode must be 'soft' or 'logits', got {mode!r}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if float(temperature) <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.task_loss = task_loss if task_loss is not None else BoundaryWeightedFPFNLoss()
        self.mode, self.temperature, self.alpha = mode, float(temperature), float(alpha)

    def distillation_term(self, z_s: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        if self.mode == "soft":
            t = self.temperature
            return bernoulli_kl(torch.sigmoid(z_t / t), torch.sigmoid(z_s / t))
        return F.mse_loss(z_s, z_t)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape[1] % 2:
            raise ValueError(f"DistillationLoss needs student and teacher logits stacked on channels, got {pred.shape}")
        z_s, z_t = pred.chunk(2, dim=1)
        return self.alpha * self.task_loss(z_s, target) + (1 - self.alpha) * self.distillation_term(z_s, z_t)
