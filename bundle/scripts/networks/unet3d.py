"""Plain 3D U-Net baseline of the SpineContextResUNet paper.

Reference: Nithurshen & Shigwan (arXiv 2605.20760), ``Comparision Results/3D UNet/model.py`` (``Plain3DUNet``),
after Cicek et al., "3D U-Net: Learning Dense Volumetric Segmentation from Sparse Annotation", MICCAI 2016.
"""
from __future__ import annotations

from torch import nn

from .encoder_decoder import UNetSkeleton


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """(conv3 with bias -> BN -> ReLU) twice, no residual."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv3d(out_channels, out_channels, 3, padding=1),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet3D(UNetSkeleton):
    """Four poolings / five levels with widths f * (1, 2, 4, 8, 16). With f = 9 (the paper's parameter-matched
    baseline) it has 1,788,274 parameters."""

    divisor = 16  # 2 ** poolings: patch sizes divisible by this avoid the trilinear skip resize

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_filters: int = 9) -> None:
        super().__init__(in_channels, out_channels, [base_filters * 2**k for k in range(5)], block=double_conv)
