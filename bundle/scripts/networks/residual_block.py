"""Residual block of SpineContextResUNet and its ResUNet baseline."""
from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """conv3 -> BN -> ReLU -> conv3 -> BN, plus a shortcut (identity, or conv1 -> BN when the width changes), then ReLU.

    As in Nithurshen & Shigwan's ``ResidualBlock`` (SpineContextResUNet, ``src/model.py``); every convolution has a bias.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm3d(out_channels),
        )
        if in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv3d(in_channels, out_channels, 1), nn.BatchNorm3d(out_channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))
