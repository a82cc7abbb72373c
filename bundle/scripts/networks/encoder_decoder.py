"""The U-shaped skeleton shared by SpineContextResUNet, ResUNet and the plain 3D U-Net baseline."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class UNetSkeleton(nn.Module):
    """Encoder blocks with 2x max-pooling, a bottleneck, transposed-conv (k=2, s=2) up-sampling to the skip's width,
    concatenation ``[up, skip]``, a decoder block, and a 1x1x1 head returning logits.

    ``widths`` are the channels of the encoder levels followed by the bottleneck, e.g. (16, 32, 64, 128) for three
    poolings. Inputs whose size is not divisible by ``2 ** (len(widths) - 1)`` still work: the up-sampled tensor is
    resized trilinearly to its skip, as in the reference code.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: Sequence[int],
        block: Callable[[int, int], nn.Module],
        bottleneck: nn.Module | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2:
            raise ValueError(f"UNetSkeleton needs at least one encoder level and a bottleneck, got widths {widths}")
        enc_in = [in_channels] + widths[:-2]
        self.encoders = nn.ModuleList(block(i, o) for i, o in zip(enc_in, widths[:-1]))
        self.bottleneck = bottleneck if bottleneck is not None else block(widths[-2], widths[-1])
        levels = list(reversed(range(len(widths) - 1)))
        self.ups = nn.ModuleList(nn.ConvTranspose3d(widths[k + 1], widths[k], 2, stride=2) for k in levels)
        self.decoders = nn.ModuleList(block(2 * widths[k], widths[k]) for k in levels)
        self.head = nn.Conv3d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []  # annotated, and no reversed()/zip over it, so torch.jit.script works
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool3d(x, 2)
        x = self.bottleneck(x)
        for level, (up, decoder) in enumerate(zip(self.ups, self.decoders)):
            skip = skips[-1 - level]
            x = up(x)
            if x.shape[2:] != skip.shape[2:]:
                x = F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.head(x)
