"""MedNeXt block, the ConvNeXt-style residual block Slim UNETR++ uses in place of Slim UNETR's pointwise MLPs.

References: Roy et al., "MedNeXt: Transformer-driven Scaling of ConvNets for Medical Image Segmentation",
MICCAI 2023; as released with Slim UNETR++ (Jin et al., Med Biol Eng Comput 2025; code
JJW20230321/Slim-UNETR-plus-plus, ``src/SlimUNETRpp/MedNeXt.py``). Re-implemented from ``seed_architectures.md``
section 2.3; parameter counts c=24: 13,224; 48: 35,664; 60: 50,340; 96: 108,192.
"""
from __future__ import annotations

import torch
from torch import nn


class MedNeXtBlock(nn.Module):
    """``x + conv1x1(GRN(GELU(conv1x1_expand(GroupNorm(dwconv_k(x))))))``.

    Depthwise k x k x k conv (bias) -> GroupNorm with one group per channel -> 1x1x1 c -> e*c -> GELU ->
    global response normalisation (``gamma * (y * g / (mean_c g + 1e-6)) + beta + y``, g = L2 norm over the spatial
    dims, gamma and beta zero-initialised) -> 1x1x1 e*c -> c, plus the residual.
    """

    def __init__(self, channels: int, expansion: int = 4, kernel_size: int = 7, grn: bool = True) -> None:
        super().__init__()
        hidden = expansion * channels
        self.dwconv = nn.Conv3d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = nn.GroupNorm(channels, channels)
        self.expand = nn.Conv3d(channels, hidden, 1)
        self.act = nn.GELU()
        self.project = nn.Conv3d(hidden, channels, 1)
        self.grn = grn
        if grn:
            self.grn_gamma = nn.Parameter(torch.zeros(1, hidden, 1, 1, 1))
            self.grn_beta = nn.Parameter(torch.zeros(1, hidden, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.expand(self.norm(self.dwconv(x))))
        if self.grn:
            g = torch.linalg.vector_norm(y, ord=2, dim=(-3, -2, -1), keepdim=True)
            y = self.grn_gamma * (y * (g / (g.mean(dim=1, keepdim=True) + 1e-6))) + self.grn_beta + y
        return x + self.project(y)
