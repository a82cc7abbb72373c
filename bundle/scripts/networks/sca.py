"""Spatial-channel attention (SCA), the DANet-style head released with Slim UNETR++.

References: Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019 (the DANet head idea); the
Slim UNETR++ release (Jin et al., Med Biol Eng Comput 2025; code JJW20230321/Slim-UNETR-plus-plus,
``src/SlimUNETRpp/SCA.py``, class ``DANetHead``), whose two branches are EPA-style attentions with their own
projections. Re-implemented from ``seed_architectures.md`` section 2.3; parameters with N = P = 64 and 4 heads:
c=24 8,716; c=96 77,836.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .epa import uniform_projection


def _heads_split(qkvv: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c4 = qkvv.shape
    return qkvv.reshape(b, n, 4, heads, c4 // (4 * heads)).permute(2, 0, 3, 4, 1)  # 4,B,h,d,N


class ChannelAttention(nn.Module):
    """Channel (d x d per head) attention with its own bias-free Linear(C -> 4C) (q, k, v used; 4th slot unused)."""

    def __init__(self, channels: int, heads: int, attn_drop: float = 0.1) -> None:
        super().__init__()
        self.heads = int(heads)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkvv = nn.Linear(channels, 4 * channels, bias=False)
        self.attn_drop = nn.Dropout(attn_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, sx, sy, sz = x.shape
        t = x.flatten(2).transpose(1, 2)
        n = t.shape[1]
        q, k, v, _ = _heads_split(self.qkvv(t), self.heads)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1))
        out = (attn @ v).permute(0, 3, 1, 2).reshape(b, n, c)
        return out.transpose(1, 2).reshape(b, c, sx, sy, sz)


class SpatialAttention(nn.Module):
    """Spatial attention with keys/values projected N -> P by a shared matrix EF, own bias-free Linear(C -> 4C)."""

    def __init__(self, tokens: int, channels: int, proj: int, heads: int, attn_drop: float = 0.1) -> None:
        super().__init__()
        self.tokens, self.heads = int(tokens), int(heads)
        # unused in the release's forward; kept so the parameter count matches it, frozen so it never lacks a grad
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1), requires_grad=False)
        self.temperature2 = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkvv = nn.Linear(channels, 4 * channels, bias=False)
        self.EF = uniform_projection(tokens, proj)
        self.attn_drop_2 = nn.Dropout(attn_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, sx, sy, sz = x.shape
        t = x.flatten(2).transpose(1, 2)
        n = t.shape[1]
        if n != self.tokens:
            raise ValueError(f"SpatialAttention was built for {self.tokens} tokens, got {n}")
        q, k, _, v = _heads_split(self.qkvv(t), self.heads)
        k_proj, v_proj = k @ self.EF, v @ self.EF
        q = F.normalize(q, dim=-1)
        attn = self.attn_drop_2(((q.transpose(-2, -1) @ k_proj) * self.temperature2).softmax(dim=-1))
        out = (attn @ v_proj.transpose(-2, -1)).permute(0, 3, 1, 2).reshape(b, n, c)  # released ordering, see epa.py
        return out.transpose(1, 2).reshape(b, c, sx, sy, sz)


class SpatialChannelAttention(nn.Module):
    """SCA (``DANetHead``): ``SpatialAttention(x) + ChannelAttention(x)`` on a ``(B, C, X, Y, Z)`` map."""

    def __init__(self, tokens: int, channels: int, proj: int, heads: int = 4) -> None:
        super().__init__()
        self.sa = SpatialAttention(tokens, channels, proj, heads)
        self.sc = ChannelAttention(channels, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sa(x) + self.sc(x)
