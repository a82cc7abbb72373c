"""Slim UNETR++ (hypothesised assembly): Slim UNETR with MedNeXt, EPA and SCA blocks.

Reference: Jin, Yang, Tong, Zhang, Wang, "Slim UNETR++: A lightweight 3D medical image segmentation network for
medical image analysis", Med Biol Eng Comput 2025 (doi 10.1007/s11517-025-03390-2); code
JJW20230321/Slim-UNETR-plus-plus. Built on :class:`~scripts.networks.slim_unetr.SlimUNETR`.

**What is and is not verified.** The public repository releases only the building blocks (``MedNeXt.py``,
``EPA.py``, ``SCA.py``) and a wrapper; the ``Encoder.py``/``Decoder.py`` that assemble them were never committed, and
the paper's own parameter and FLOP counts could not be retrieved. The blocks here are re-implementations of the
released ones; how they are put together is an assumption (``seed_architectures.md`` section 2.4), so **the
paper's parameter count could not be verified** and the counts below are only what this implementation has.

Each Slim UNETR block becomes::

    x += DWPE(x); x += LRC(x); x = MedNeXt(x)            # MedNeXt replaces the first pointwise MLP
    x += DWPE(x); x += LRD(EPA-block(subsample_r(x)))     # EPA replaces the global sparse transformer
    x = MedNeXt(x)                                        # MedNeXt replaces the second pointwise MLP

with N = tokens of the stride-r subsampled grid and projection size P = min(64, N), and an SCA residual
``x + SCA(x)`` on the deepest feature map (``sca=True``). Two variants:

* ``SlimUNETRPlusPlus`` ("slim_unetr_pp", full): the EPA-block is the UNETR++ transformer block (LN + EPA + a
  3x3x3 UnetResBlock + 1x1x1 conv). BraTS configuration (in 4, out 3, 128^3): 6,667,905 parameters here.
* ``SlimUNETRPlusPlusLight`` ("slim_unetr_pp_light"): LN + EPA only. BraTS configuration: 2,877,225 parameters
  here, 2,799,389 without SCA. Given the paper's "lightweight" claim this is the safer default.

(The spec's hypothesised 6,667,909 / 2,877,229 are 4 higher: its SCA residual has 77,840 parameters where the
released SCA block, reproduced here, has 77,836; without SCA the counts agree exactly.) At the bundle defaults
(in 1, out 1, img_size 128x128x64) the counts are 6,525,051 (full) and 2,734,371 (light).

Like Slim UNETR, the network is tied to one input size (``img_size``): the learned position embedding and every
EPA/SCA projection matrix are sized by token counts. Divisor 32.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .epa import EPATransformerBlock
from .mednext_block import MedNeXtBlock
from .sca import SpatialChannelAttention
from .slim_unetr import SlimUNETR
from .slim_unetr_block import depthwise_conv3, local_representations_congregation, local_reverse_diffusion


class SlimUNETRPlusPlusBlock(nn.Module):
    """Slim UNETR block with MedNeXt instead of the pointwise MLPs and an EPA transformer block instead of the
    global sparse transformer. ``tokens`` = size of the stride-``r`` subsampled grid; ``proj`` = EPA projection P."""

    def __init__(self, channels: int, r: int, heads: int, tokens: int, proj: int, light: bool = True) -> None:
        super().__init__()
        self.pe1 = depthwise_conv3(channels)
        self.lrc = local_representations_congregation(channels)
        self.mednext1 = MedNeXtBlock(channels)
        self.pe2 = depthwise_conv3(channels)
        self.sampler = nn.AvgPool3d(kernel_size=1, stride=r)
        self.epa = EPATransformerBlock(tokens, channels, proj, heads, conv=not light)
        self.lrd = local_reverse_diffusion(channels, r)
        self.mednext2 = MedNeXtBlock(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pe1(x)
        x = x + self.lrc(x)
        x = self.mednext1(x)
        x = x + self.pe2(x)
        x = x + self.lrd(self.epa(self.sampler(x)))
        return self.mednext2(x)


class SpatialChannelResidual(nn.Module):
    """``x + SCA(x)``."""

    def __init__(self, tokens: int, channels: int, proj: int, heads: int) -> None:
        super().__init__()
        self.sca = SpatialChannelAttention(tokens, channels, proj, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sca(x)


class SlimUNETRPlusPlus(SlimUNETR):
    """Slim UNETR++, full variant (UNETR++ transformer blocks). Arguments as :class:`SlimUNETR`, plus
    ``light`` (LN + EPA only, no 3x3x3 residual conv block), ``sca`` (SCA residual at the deepest stage) and
    ``max_proj`` (EPA/SCA projection size P = min(max_proj, N)). The BraTS configuration is
    ``SlimUNETRPlusPlus(in_channels=4, out_channels=3, img_size=128)``."""

    divisor = 32
    default_light = False

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        img_size: Sequence[int] | int = (128, 128, 64),
        embed_dim: int = 96,
        channels: Sequence[int] = (24, 48, 60),
        blocks: Sequence[int] = (1, 2, 3, 2),
        heads: Sequence[int] = (1, 2, 4, 4),
        r: Sequence[int] = (4, 2, 2, 1),
        dropout: float = 0.3,
        embedding_dim: int | None = None,
        light: bool | None = None,
        sca: bool = True,
        max_proj: int = 64,
    ) -> None:
        self.light = self.default_light if light is None else bool(light)
        self.use_sca = bool(sca)
        self.max_proj = int(max_proj)
        super().__init__(
            in_channels, out_channels, img_size, embed_dim, channels, blocks, heads, r, dropout, embedding_dim
        )

    def make_block(self, channels: int, r: int, heads: int, tokens: int) -> nn.Module:
        return SlimUNETRPlusPlusBlock(channels, r, heads, tokens, min(self.max_proj, tokens), light=self.light)

    def make_bottleneck(self, channels: int, heads: int, tokens: int) -> nn.Module:
        if not self.use_sca:
            return nn.Identity()
        return SpatialChannelResidual(tokens, channels, min(self.max_proj, tokens), heads)


class SlimUNETRPlusPlusLight(SlimUNETRPlusPlus):
    """Slim UNETR++, light variant: the EPA block is LayerNorm + EPA with its residual only."""

    default_light = True
