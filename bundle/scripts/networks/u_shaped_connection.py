"""Building blocks of uC 3DU-Net: the U-shaped connection (a slice-wise 2D U-Net on a skip) and DFi.

Reference: Huang et al., "Upping the Game: How 2D U-Net Skip Connection Flip 3D Segmentation", NeurIPS 2024;
code IMOP-lab/U-Shaped-Connection, ``model/uC_3DUNet.py`` (``uC_skip``, ``UNet2d``, ``DFi``). Re-implemented from the
description in ``seed_architectures.md`` section 3.3/3.4; the parameter counts match the reference exactly.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def double_conv2d(in_channels: int, out_channels: int) -> nn.Sequential:
    """(conv3x3 with bias -> GroupNorm(out/2 groups) -> ReLU) twice."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.GroupNorm(out_channels // 2, out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.GroupNorm(out_channels // 2, out_channels),
        nn.ReLU(inplace=True),
    )


class UNet2D(nn.Module):
    """The simplified 2D U-Net inside a U-shaped connection: no stem and no head, so input and output have
    ``widths[0]`` channels. Down = AvgPool2d(2) + double conv; up = ConvTranspose2d(c -> c/2, k=2, s=2), centre-pad
    to the skip, ``cat[skip, up]``, double conv to the skip's width. ``len(widths) - 1`` poolings."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2:
            raise ValueError(f"UNet2D needs at least two widths (one pooling), got {widths}")
        self.widths = widths
        self.downs = nn.ModuleList(
            nn.Sequential(nn.AvgPool2d(2), double_conv2d(a, b)) for a, b in zip(widths[:-1], widths[1:])
        )
        pairs = list(zip(reversed(widths[:-1]), reversed(widths[1:])))  # (skip width, deeper width)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(b, b // 2, 2, stride=2) for _, b in pairs)
        self.convs = nn.ModuleList(double_conv2d(a + b // 2, a) for a, b in pairs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(x)
        for up, conv, skip in zip(self.ups, self.convs, reversed(skips)):
            x = up(x)
            dy, dx = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
            x = conv(torch.cat([skip, x], dim=1))
        return x


class UShapedConnection(nn.Module):
    """A 2D U-Net applied to every slice of a 3D skip feature map, all slices sharing the weights.

    The slices are planes of constant LAST spatial axis: ``(B, C, X, Y, Z) -> (B*Z, C, X, Y)``, the 2D U-Net runs
    over ``(X, Y)``, and the result is folded back. The bundle orients every volume to RAS (``Orientationd``), so
    axis 0 is L-R, axis 1 is P-A and axis 2 is I-S: the 2D U-Nets therefore see **axial** slices, as in the paper.
    Slices do not exchange information inside this block (``tests/networks/test_uc_3d_unet.py`` checks that).
    """

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.unet = UNet2D(widths)

    @property
    def divisor(self) -> int:
        """In-plane sizes divisible by this avoid the centre padding of the 2D U-Net."""
        return 2 ** len(self.unet.downs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, sx, sy, sz = x.shape
        y = x.permute(0, 4, 1, 2, 3).reshape(b * sz, c, sx, sy)
        y = self.unet(y)
        return y.reshape(b, sz, c, sx, sy).permute(0, 2, 3, 4, 1)


class DFi(nn.Module):
    """Dual feature integration: ``conv1x1(cat[up, skip]) * sigmoid(conv1x1(up) + conv1x1(skip))`` with a
    single-channel spatial gate; 2c^2 + 2c + 2 parameters."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fuse = nn.Conv3d(2 * channels, channels, 1, bias=False)
        self.gate_up = nn.Conv3d(channels, 1, 1)
        self.gate_skip = nn.Conv3d(channels, 1, 1)

    def forward(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.gate_up(up) + self.gate_skip(skip))
        return self.fuse(torch.cat([up, skip], dim=1)) * gate
