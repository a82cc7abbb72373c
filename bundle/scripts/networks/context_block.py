"""Dilated-convolution context block (the bottleneck of SpineContextResUNet)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ContextBlock(nn.Module):
    """Parallel dilated 3x3x3 convolutions on the same input, concatenated, then BN -> ReLU -> conv1 -> BN -> ReLU.

    Each branch is a plain biased convolution (no per-branch normalisation) with ``dilation = padding = rate``, as in
    the ASPP-style bottleneck of Nithurshen & Shigwan, "SpineContextResUNet" (arXiv 2605.20760). No residual path and
    no image-pooling branch. The paper's rates are (1, 2, 4, 8); its ablations use (1, 4, 8, 16), (1, 2, 3, 4) and
    (1, 1, 1, 1).
    """

    def __init__(self, in_channels: int, out_channels: int, dilations: Sequence[int] = (1, 2, 4, 8)) -> None:
        super().__init__()
        if not dilations or any(int(r) < 1 for r in dilations):
            raise ValueError(f"ContextBlock: dilation rates must be positive integers, got {list(dilations)}")
        self.branches = nn.ModuleList(
            nn.Conv3d(in_channels, out_channels, 3, padding=int(r), dilation=int(r)) for r in dilations
        )
        width = out_channels * len(self.branches)
        self.fuse = nn.Sequential(
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            nn.Conv3d(width, out_channels, 1),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))
