"""ResUNet baseline of the SpineContextResUNet paper: the same network with a plain residual bottleneck.

Reference: Nithurshen & Shigwan (arXiv 2605.20760), ``Comparision Results/ResUNet/model.py``; it is the paper's
"context block off" ablation.
"""
from __future__ import annotations

from .encoder_decoder import UNetSkeleton
from .residual_block import ResidualBlock


class ResUNet(UNetSkeleton):
    """Residual 3D U-Net, widths (f, 2f, 4f) and bottleneck 8f, three poolings. 1,424,545 parameters by default."""

    divisor = 8  # 2 ** poolings: patch sizes divisible by this avoid the trilinear skip resize

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_filters: int = 16) -> None:
        super().__init__(in_channels, out_channels, [base_filters * 2**k for k in range(4)], block=ResidualBlock)
