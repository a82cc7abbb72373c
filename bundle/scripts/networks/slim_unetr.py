"""Slim UNETR: a light hybrid CNN-transformer encoder-decoder with additive skips.

Reference: Pang et al., "Slim UNETR: Scale Hybrid Transformers to Efficient 3D Medical Image Segmentation Under
Limited Computational Resources", IEEE TMI 2023; code aigzhusmart/Slim-UNETR (``src/SlimUNETR/*.py``).
Re-implemented from ``seed_architectures.md`` section 2.2. With the BraTS configuration
``SlimUNETR(in_channels=4, out_channels=3, img_size=(128, 128, 128))`` (embed_dim 96, channels (24, 48, 60),
blocks (1, 2, 3, 2), heads (1, 2, 4, 4), r (4, 2, 2, 1), dropout 0.3, hence embedding_dim 64) it has exactly the
reference's 1,783,425 parameters.

Fixed input size: after the deepest stage the tokens get a *learned* position embedding of shape
``(1, embedding_dim, embed_dim)`` with ``embedding_dim`` = number of tokens = prod(img_size / 32), so a built network
accepts only patches of ``img_size``. The bundle default is the training patch (128, 128, 64) -> 32 tokens; pass
``img_size`` equal to the ``patch_size`` of the config (sliding-window inference uses the same patch).

One deliberate difference from the reference code: the reference turns the (B, N, C) tokens back into a volume with
a bare ``reshape(B, C, X, Y, Z)`` (a fixed scrambling of channels and positions); here the tokens are transposed back
first, as the paper describes. Parameter counts are unaffected.
"""
from __future__ import annotations

from collections.abc import Sequence
from math import prod

import torch
from torch import nn

from .slim_unetr_block import SlimUNETRBlock

DOWN_STRIDES = (4, 2, 2, 2)  # the encoder's patch-merging strides (fixed in the reference code)


def _as_triple(img_size) -> tuple[int, int, int]:
    size = (int(img_size),) * 3 if isinstance(img_size, int) else tuple(int(s) for s in img_size)
    if len(size) != 3:
        raise ValueError(f"img_size needs three spatial sizes, got {img_size}")
    return size


class SlimUNETR(nn.Module):
    """Four encoder stages (Conv3d(k=s) + GroupNorm(1) patch merging with strides 4, 2, 2, 2, then ``blocks[i]``
    Slim blocks), learned position embedding + dropout on the deepest tokens, a mirrored decoder
    (ConvTranspose3d(k=s=2) + GroupNorm(1), additive skips) and a ConvTranspose3d(k=s=4) + GroupNorm(1) head that
    returns logits at the input resolution.

    ``img_size`` fixes the number of deepest tokens (``embedding_dim``); every size must be divisible by 32, and
    every stage grid by that stage's sparse rate ``r``. ``embedding_dim`` may be given (as in the reference configs)
    but must then equal prod(img_size / 32).
    """

    divisor = 32

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
    ) -> None:
        super().__init__()
        self.img_size = _as_triple(img_size)
        widths = [int(c) for c in channels] + [int(embed_dim)]
        if len(widths) != 4 or len(blocks) != 4 or len(heads) != 4 or len(r) != 4:
            raise ValueError("channels needs 3 widths and blocks, heads, r 4 entries each (one per stage)")
        self.stage_grids = self._stage_grids(self.img_size, r)
        tokens = prod(self.stage_grids[-1])
        if embedding_dim is not None and int(embedding_dim) != tokens:
            raise ValueError(
                f"embedding_dim {embedding_dim} does not match img_size {list(self.img_size)}: "
                f"the deepest stage has prod(img_size / 32) = {tokens} tokens"
            )
        self.embedding_dim = tokens
        self.sparse_tokens = [prod(s // int(ri) for s in grid) for grid, ri in zip(self.stage_grids, r)]

        def down(a: int, b: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv3d(a, b, k, stride=k), nn.GroupNorm(1, b))

        def up(a: int, b: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.ConvTranspose3d(a, b, k, stride=k), nn.GroupNorm(1, b))

        def stage(i: int) -> nn.Sequential:
            return nn.Sequential(
                *[self.make_block(widths[i], int(r[i]), int(heads[i]), self.sparse_tokens[i]) for _ in range(blocks[i])]
            )

        ins = [in_channels] + widths[:3]
        self.downs = nn.ModuleList(down(a, b, k) for a, b, k in zip(ins, widths, DOWN_STRIDES))
        self.encoder = nn.ModuleList(stage(i) for i in range(4))
        self.bottleneck = self.make_bottleneck(widths[3], int(heads[3]), tokens)
        self.position_embeddings = nn.Parameter(torch.zeros(1, tokens, widths[3]))
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.ModuleList(stage(i) for i in range(4))
        self.ups = nn.ModuleList(up(widths[i + 1], widths[i], 2) for i in (2, 1, 0))
        self.head = up(widths[0], out_channels, DOWN_STRIDES[0])

    @staticmethod
    def _stage_grids(img_size: tuple[int, int, int], r: Sequence[int]) -> list[tuple[int, ...]]:
        if any(s % prod(DOWN_STRIDES) for s in img_size):
            raise ValueError(f"img_size {list(img_size)} must be divisible by {prod(DOWN_STRIDES)} on every axis")
        grids, scale = [], 1
        for i, stride in enumerate(DOWN_STRIDES):
            scale *= stride
            grid = tuple(s // scale for s in img_size)
            if any(g % int(r[i]) for g in grid):
                raise ValueError(f"stage {i} grid {list(grid)} is not divisible by its sparse rate r={r[i]}")
            grids.append(grid)
        return grids

    def make_block(self, channels: int, r: int, heads: int, tokens: int) -> nn.Module:
        """One block of a stage; ``tokens`` = size of the stride-r subsampled grid (used by subclasses)."""
        return SlimUNETRBlock(channels, r, heads)

    def make_bottleneck(self, channels: int, heads: int, tokens: int) -> nn.Module:
        """Applied to the deepest feature map before the position embedding; identity here."""
        return nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.img_size:
            raise ValueError(
                f"{type(self).__name__} was built for img_size {list(self.img_size)} (learned position embedding of "
                f"{self.embedding_dim} tokens) but got an input of spatial size {list(x.shape[2:])}"
            )
        skips = []
        for i in range(4):
            x = self.encoder[i](self.downs[i](x))
            if i < 3:
                skips.append(x)
        x = self.bottleneck(x)
        b, c, sx, sy, sz = x.shape
        tokens = self.dropout(x.flatten(2).transpose(1, 2) + self.position_embeddings)
        x = tokens.transpose(1, 2).reshape(b, c, sx, sy, sz)
        x = self.decoder[3](x)
        for up, i in zip(self.ups, (2, 1, 0)):
            x = self.decoder[i](up(x) + skips[i])
        return self.head(x)
