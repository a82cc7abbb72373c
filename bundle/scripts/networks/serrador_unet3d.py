"""The 3D U-Nets of the two-step vertebra-instance method with knowledge distillation.

Reference: Serrador, Villani, Moccia, Santos, "Knowledge distillation on individual vertebrae segmentation exploiting
3D U-Net", Computerized Medical Imaging and Graphics 113 (2024) 102350; code luiserrador/IndVertSeg_VerSe and
luiserrador/ML_3D_Unet (Keras ``create_unet3d``), ported to PyTorch. The method follows Lessmann et al., "Iterative
fully convolutional neural networks for automatic vertebra segmentation and identification", MedIA 53 (2019).

Topology (Keras ``create_unet3d(n_convs=2, BN, ReLU, max-pool, nearest up-sampling)``): a full-resolution stem of 2
or 4 convolutions, one double convolution per lower level, a bottleneck, and a decoder that concatenates the nearest
up-sampled features with the skip before a double convolution. Each convolution is conv(bias) -> BN -> ReLU.

Presets (parameter counts asserted by the tests):

* :func:`serrador_teacher` - step 2 teacher, 2 inputs (CT, memory), widths (16, 32, 64, 128): 1,475,345.
* :func:`serrador_student` - step 2 student, 75 % fewer parameters. ``"shallow"`` (default) drops one level,
  widths (16, 32, 64): 368,273; ``"thin"`` halves the widths, (8, 16, 32, 64): 369,609. The paper calls its student
  a "shallower network", so the shallow variant is the default.
* :func:`serrador_heatmap` - step 1 spine localisation, 1 input, widths (8, 16, 32), 2-convolution stem, 2 softmax
  outputs (heat, 1 - heat): 88,842.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .unet3d import double_conv

__all__ = ["SerradorUNet3D", "serrador_teacher", "serrador_student", "serrador_heatmap", "STUDENT_FEATURES",
           "INSTANCE_NETWORKS", "build_instance_network"]

#: The two configurations with 75 % fewer parameters than the teacher.
STUDENT_FEATURES: dict[str, tuple[int, ...]] = {"shallow": (16, 32, 64), "thin": (8, 16, 32, 64)}


class SerradorUNet3D(nn.Module):
    """Keras-style 3D U-Net returning logits (sigmoid, softmax or a distillation temperature are applied outside).

    Args:
        in_channels: 2 for step 2 (CT patch, memory of segmented vertebrae), 1 for the step 1 heatmap network.
        out_channels: 1 (next vertebra, sigmoid) or 2 (heat / 1 - heat, softmax).
        features: widths per level; the last one is the bottleneck. ``len(features) - 1`` poolings.
        full_res_convs: 4 (a stem plus a level-0 block, as the teacher) or 2 (the heatmap network).
    """

    def __init__(self, in_channels: int = 2, out_channels: int = 1, features: Sequence[int] = (16, 32, 64, 128),
                 full_res_convs: int = 4) -> None:
        super().__init__()
        f = [int(x) for x in features]
        if len(f) < 2:
            raise ValueError(f"features needs at least two levels, got {features}")
        if full_res_convs not in (2, 4):
            raise ValueError(f"full_res_convs must be 2 or 4, got {full_res_convs}")
        stem = double_conv(in_channels, f[0])
        self.full = nn.Sequential(stem, double_conv(f[0], f[0])) if full_res_convs == 4 else stem
        self.enc = nn.ModuleList([double_conv(f[k - 1], f[k]) for k in range(1, len(f) - 1)])
        self.bottleneck = double_conv(f[-2], f[-1])
        self.dec = nn.ModuleList([double_conv(f[k + 1] + f[k], f[k]) for k in reversed(range(len(f) - 1))])
        self.head = nn.Conv3d(f[0], out_channels, 1)
        self.divisor = 2 ** (len(f) - 1)
        # channels-last 3D: on CPU the backward pass of the 8-channel convolutions is ~35x faster (2.0 s vs
        # 0.056 s for one 8->8 layer on 4x32x32x64, 2 threads), the forward about 1.5-2x
        self.to(memory_format=torch.channels_last_3d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bad = [s for s in x.shape[2:] if s % self.divisor]
        if bad:
            raise ValueError(f"input size {tuple(x.shape[2:])} must be divisible by {self.divisor}")
        x = self.full(x.contiguous(memory_format=torch.channels_last_3d))
        skips = [x]
        for block in self.enc:
            x = block(F.max_pool3d(x, 2))
            skips.append(x)
        x = self.bottleneck(F.max_pool3d(x, 2))
        for block, skip in zip(self.dec, reversed(skips)):
            x = block(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skip], 1))
        return self.head(x).contiguous()


def serrador_teacher(in_channels: int = 2, out_channels: int = 1) -> SerradorUNet3D:
    """Step 2 teacher: widths (16, 32, 64, 128), 4-convolution stem; 1,475,345 parameters."""
    return SerradorUNet3D(in_channels, out_channels, (16, 32, 64, 128), full_res_convs=4)


def serrador_student(variant: str = "shallow", in_channels: int = 2, out_channels: int = 1) -> SerradorUNet3D:
    """Step 2 student with 75 % fewer parameters: ``"shallow"`` (16, 32, 64) or ``"thin"`` (8, 16, 32, 64)."""
    if variant not in STUDENT_FEATURES:
        raise ValueError(f"unknown student variant {variant!r}; choose one of {sorted(STUDENT_FEATURES)}")
    return SerradorUNet3D(in_channels, out_channels, STUDENT_FEATURES[variant], full_res_convs=4)


def serrador_heatmap(in_channels: int = 1, out_channels: int = 2) -> SerradorUNet3D:
    """Step 1 spine localisation: widths (8, 16, 32), 2-convolution stem, 2 softmax outputs; 88,842 parameters."""
    return SerradorUNet3D(in_channels, out_channels, (8, 16, 32), full_res_convs=2)


#: Names the vertebra-instance configs use (``network_name``).
INSTANCE_NETWORKS = {
    "teacher": serrador_teacher,
    "student": lambda **kw: serrador_student("shallow", **kw),
    "student_thin": lambda **kw: serrador_student("thin", **kw),
    "heatmap": serrador_heatmap,
}


def build_instance_network(name: str = "teacher", out_channels: int | None = None, **kwargs) -> SerradorUNet3D:
    """``teacher`` | ``student`` (shallow, the default student) | ``student_thin`` | ``heatmap``.

    ``out_channels`` and ``kwargs`` (``in_channels``) override the preset's own, as a weights' sidecar records them
    (:func:`scripts.weights_sidecar.build_network_from_sidecar`); ``None`` keeps the preset's."""
    if name not in INSTANCE_NETWORKS:
        raise ValueError(f"unknown vertebra network '{name}': choose one of {', '.join(INSTANCE_NETWORKS)}")
    if out_channels is not None:
        kwargs["out_channels"] = int(out_channels)
    return INSTANCE_NETWORKS[name](**kwargs)
