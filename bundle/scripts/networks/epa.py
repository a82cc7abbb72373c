"""Efficient paired attention (EPA) and the UNETR++ transformer block around it, as released with Slim UNETR++.

References: Shaker et al., "UNETR++: Delving into Efficient and Accurate 3D Medical Image Segmentation",
IEEE TMI 2024; the variant released with Slim UNETR++ (Jin et al., Med Biol Eng Comput 2025; code
JJW20230321/Slim-UNETR-plus-plus, ``src/SlimUNETRpp/EPA.py``). Re-implemented from ``seed_architectures.md``
section 2.3. Unlike the current official UNETR++ code, the shared E=F projection is a bias-free (N x P) matrix and the
spatial and channel branches are summed without output projections, as in the Slim UNETR++ release.
Parameter counts of :class:`EPATransformerBlock` with N = P = 64 and 4 heads: c=24 38,280; 48 140,424; 60 216,984;
96 548,616.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.networks.blocks import UnetResBlock
from torch import nn


def uniform_projection(tokens: int, proj: int) -> nn.Parameter:
    """The shared (tokens x proj) E=F matrix, initialised uniformly in +-1/sqrt(proj)."""
    bound = 1.0 / math.sqrt(proj)
    return nn.Parameter(torch.empty(tokens, proj).uniform_(-bound, bound))


class EPA(nn.Module):
    """Paired spatial + channel attention on ``(B, N, C)`` tokens with a fixed token count ``N``.

    One bias-free Linear(C -> 4C) gives q_shared, k_shared, v_channel, v_spatial per head (d = C / heads).
    Channel branch: softmax(norm(q) norm(k)^T * temperature) (d x d) applied to v_channel. Spatial branch: k and
    v_spatial projected N -> P by the shared matrix EF, softmax(norm(q)^T k_proj * temperature2) (N x P) applied to
    the projected values. Output = channel + spatial.
    """

    def __init__(self, tokens: int, channels: int, proj: int, heads: int = 4, attn_drop: float = 0.1) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} must be divisible by heads {heads}")
        self.tokens, self.heads = int(tokens), int(heads)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.temperature2 = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkvv = nn.Linear(channels, 4 * channels, bias=False)
        self.EF = uniform_projection(tokens, proj)
        self.attn_drop = nn.Dropout(attn_drop)
        self.attn_drop_2 = nn.Dropout(attn_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        if n != self.tokens:
            raise ValueError(f"EPA was built for {self.tokens} tokens, got {n}")
        qkvv = self.qkvv(x).reshape(b, n, 4, self.heads, c // self.heads).permute(2, 0, 3, 4, 1)  # 4,B,h,d,N
        q, k, v_ca, v_sa = qkvv[0], qkvv[1], qkvv[2], qkvv[3]
        k_proj, v_sa_proj = k @ self.EF, v_sa @ self.EF  # B,h,d,P
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn_ca = self.attn_drop(((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1))  # B,h,d,d
        x_ca = (attn_ca @ v_ca).permute(0, 3, 1, 2).reshape(b, n, c)
        attn_sa = self.attn_drop_2(((q.transpose(-2, -1) @ k_proj) * self.temperature2).softmax(dim=-1))  # B,h,N,P
        # as released (and in UNETR++): the (B,h,N,d) result is permuted to (B,d,h,N) before the reshape to (B,N,C),
        # a fixed reordering of the spatial branch's outputs that training absorbs; kept for numerical identity
        x_sa = (attn_sa @ v_sa_proj.transpose(-2, -1)).permute(0, 3, 1, 2).reshape(b, n, c)
        return x_ca + x_sa


class EPATransformerBlock(nn.Module):
    """UNETR++ transformer block on a ``(B, C, X, Y, Z)`` map with X*Y*Z = ``tokens``.

    ``t = t + gamma * EPA(LayerNorm(t))`` on the tokens (gamma initialised to 1e-6); then, with ``conv=True``
    (the full block), ``y + conv1x1(Dropout3d(0.1)(UnetResBlock(y)))`` where UnetResBlock = conv3 -> BN ->
    LeakyReLU(0.01) -> conv3 -> BN, + input, LeakyReLU (bias-free convs). ``conv=False`` (the "light" block) stops
    after the attention residual.
    """

    def __init__(
        self, tokens: int, channels: int, proj: int, heads: int, attn_drop: float = 0.0, conv: bool = True
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.gamma = nn.Parameter(1e-6 * torch.ones(channels))
        self.epa = EPA(tokens, channels, proj, heads, attn_drop=attn_drop)
        self.conv = conv
        if conv:
            self.res_block = UnetResBlock(3, channels, channels, kernel_size=3, stride=1, norm_name="batch")
            self.out = nn.Sequential(nn.Dropout3d(0.1), nn.Conv3d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, sx, sy, sz = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self.gamma * self.epa(self.norm(t))
        y = t.transpose(1, 2).reshape(b, c, sx, sy, sz)
        if self.conv:
            y = y + self.out(self.res_block(y))
        return y
