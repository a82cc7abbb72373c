"""uC 3DU-Net: a MONAI BasicUNet-like 3D U-Net whose three upper skips pass through U-shaped connections.

Reference: Huang et al., "Upping the Game: How 2D U-Net Skip Connection Flip 3D Segmentation", NeurIPS 2024;
code IMOP-lab/U-Shaped-Connection (``model/uC_3DUNet.py``, instantiated in ``model.py`` with
``features=[24, 48, 96, 192, 384, 32]``). With one input and five output channels (OIMHS) the network has
21,716,235 parameters and thop counts 286.43 G multiply-accumulates for a 1x1x96^3 input, both equal to the README.

Orientation: the U-shaped connections are 2D U-Nets run slice by slice over the LAST spatial axis. The bundle's
images are RAS-oriented (axis 0 = L-R, axis 1 = P-A, axis 2 = I-S), so they work on axial slices, as in the paper.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, UpSample
from torch import nn

from .u_shaped_connection import DFi, UShapedConnection

ACT = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True})
NORM = ("instance", {"affine": True})


def two_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """MONAI ``Convolution`` (conv3x3x3 with bias -> InstanceNorm(affine) -> LeakyReLU 0.1) twice."""
    return nn.Sequential(
        Convolution(3, in_channels, out_channels, act=ACT, norm=NORM, bias=True, padding=1),
        Convolution(3, out_channels, out_channels, act=ACT, norm=NORM, bias=True, padding=1),
    )


class UpCat(nn.Module):
    """Deconv (k=2, s=2) up-sampling, replicate-pad by one voxel on any axis that is one short of the skip, then
    DFi(up, skip) (``dfi=True``, the up-sampled width is halved, no conv afterwards) or ``cat[skip, up]`` + two convs
    (``dfi=False``, the up-sampled width is kept)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, dfi: bool = True) -> None:
        super().__init__()
        up_channels = in_channels // 2 if dfi else in_channels
        if dfi and up_channels != out_channels:
            raise ValueError(f"DFi merge needs up-sampled width {up_channels} == output width {out_channels}")
        self.use_dfi = dfi
        self.up = UpSample(3, in_channels, up_channels, 2, mode="deconv")
        self.merge = DFi(out_channels) if dfi else two_conv(skip_channels + up_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        pad = []
        for i in range(3):  # F.pad order: last axis first
            pad += [0, int(skip.shape[-i - 1] != x.shape[-i - 1])]
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        return self.merge(x, skip) if self.use_dfi else self.merge(torch.cat([skip, x], dim=1))


class UC3DUNet(nn.Module):
    """uC 3DU-Net with ``features = (f0, f1, f2, f3, f4, f_last)``.

    * encoder: two convs at full resolution (f0), then four (MaxPool3d(2) + two convs) levels f1..f4;
    * skips x0, x1, x2 go through U-shaped connections with 2D widths ``features[k:5]`` (4, 3 and 2 poolings, so
      each bottoms out at f4 channels), x3 is a plain skip;
    * decoder: three DFi merges (no conv after them), then deconv f1 -> f1, ``cat[uC_0(x0), up]`` and two convs to
      f_last, and a 1x1x1 head returning logits.

    Patch sizes must be divisible by 16 on every axis (four 3D poolings; the in-plane 2D poolings need the same).
    """

    divisor = 16

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (24, 48, 96, 192, 384, 32),
    ) -> None:
        super().__init__()
        f = [int(v) for v in features]
        if len(f) != 6:
            raise ValueError(f"features needs six widths (five levels and the last decoder conv), got {f}")
        self.features = tuple(f)
        self.conv_0 = two_conv(in_channels, f[0])
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool3d(2), two_conv(f[k], f[k + 1])) for k in range(4))
        self.ucs = nn.ModuleList(UShapedConnection(f[k:5]) for k in range(3))
        self.upcat_4 = UpCat(f[4], f[3], f[3])
        self.upcat_3 = UpCat(f[3], f[2], f[2])
        self.upcat_2 = UpCat(f[2], f[1], f[1])
        self.upcat_1 = UpCat(f[1], f[0], f[5], dfi=False)
        self.head = nn.Conv3d(f[5], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.conv_0(x)
        x1 = self.downs[0](x0)
        x2 = self.downs[1](x1)
        x3 = self.downs[2](x2)
        x4 = self.downs[3](x3)
        x0, x1, x2 = self.ucs[0](x0), self.ucs[1](x1), self.ucs[2](x2)
        u = self.upcat_4(x4, x3)
        u = self.upcat_3(u, x2)
        u = self.upcat_2(u, x1)
        u = self.upcat_1(u, x0)
        return self.head(u)
