"""The Slim UNETR block: local convolutional mixing plus global attention on a stride-r subsampled grid.

Reference: Pang et al., "Slim UNETR: Scale Hybrid Transformers to Efficient 3D Medical Image Segmentation Under
Limited Computational Resources", IEEE TMI 2023; code aigzhusmart/Slim-UNETR (``src/SlimUNETR/Slim_UNETR_Block.py``).
Re-implemented from ``seed_architectures.md`` section 2.2; parameter-for-parameter equal to the reference.
"""
from __future__ import annotations

import torch
from torch import nn


def depthwise_conv3(channels: int) -> nn.Conv3d:
    """The convolutional position encoding (``PatchPartition``): depthwise 3x3x3 without bias."""
    return nn.Conv3d(channels, channels, 3, padding=1, groups=channels, bias=False)


def line_conv(channels: int, expansion: int = 4) -> nn.Sequential:
    """Pointwise MLP (``LineConv``): 1x1x1 c -> e*c -> GELU -> 1x1x1 e*c -> c, bias-free."""
    return nn.Sequential(
        nn.Conv3d(channels, channels * expansion, 1, bias=False),
        nn.GELU(),
        nn.Conv3d(channels * expansion, channels, 1, bias=False),
    )


def local_representations_congregation(channels: int) -> nn.Sequential:
    """LRC: BN -> 1x1x1 -> depthwise 3x3x3 -> BN -> 1x1x1, bias-free convs."""
    return nn.Sequential(
        nn.BatchNorm3d(channels),
        nn.Conv3d(channels, channels, 1, bias=False),
        depthwise_conv3(channels),
        nn.BatchNorm3d(channels),
        nn.Conv3d(channels, channels, 1, bias=False),
    )


def local_reverse_diffusion(channels: int, r: int) -> nn.Sequential:
    """LRD: depthwise ConvTranspose3d(k=s=r) back to the full grid -> GroupNorm(1) -> 1x1x1 (bias-free)."""
    return nn.Sequential(
        nn.ConvTranspose3d(channels, channels, r, stride=r, groups=channels),
        nn.GroupNorm(1, channels),
        nn.Conv3d(channels, channels, 1, bias=False),
    )


class GlobalSparseTransformer(nn.Module):
    """Multi-head self-attention over the tokens of the stride-``r`` subsampled grid (``AvgPool3d(k=1, s=r)``, i.e.
    strided subsampling; kept as a module, as in the reference, so thop-style counts match).

    As in the reference code the attention logits are **not** scaled by 1/sqrt(d)."""

    def __init__(self, channels: int, r: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} must be divisible by heads {heads}")
        self.heads, self.head_dim = int(heads), channels // heads
        self.sampler = nn.AvgPool3d(kernel_size=1, stride=int(r))
        self.qkv = nn.Conv3d(channels, 3 * channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sampler(x)
        b, c, sx, sy, sz = x.shape
        q, k, v = self.qkv(x).view(b, self.heads, 3 * self.head_dim, sx * sy * sz).split(self.head_dim, dim=2)
        attn = (q.transpose(-2, -1) @ k).softmax(-1)
        return (v @ attn.transpose(-2, -1)).reshape(b, c, sx, sy, sz)


class SlimUNETRBlock(nn.Module):
    """``x += PE(x); x += LRC(x); x += MLP(x); x += PE(x); x += LRD(GST(x)); x += MLP(x)`` for ``channels`` c,
    sparse rate ``r`` and ``heads`` attention heads. Every spatial size must be divisible by ``r``."""

    def __init__(self, channels: int, r: int, heads: int, expansion: int = 4) -> None:
        super().__init__()
        self.pe1 = depthwise_conv3(channels)
        self.lrc = local_representations_congregation(channels)
        self.mlp1 = line_conv(channels, expansion)
        self.pe2 = depthwise_conv3(channels)
        self.gst = GlobalSparseTransformer(channels, r, heads)
        self.lrd = local_reverse_diffusion(channels, r)
        self.mlp2 = line_conv(channels, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pe1(x)
        x = x + self.lrc(x)
        x = x + self.mlp1(x)
        x = x + self.pe2(x)
        x = x + self.lrd(self.gst(x))
        return x + self.mlp2(x)
