"""Fold eval-mode BatchNorm into the preceding convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``).

The bundle's residual networks (SpineContextResUNet, ResUNet, UNet3D) put every BatchNorm3d right after a Conv3d in an
``nn.Sequential``; the context block's first BatchNorm follows the concatenation of its dilated branches, so it is
split into one slice per branch and folded into each branch. Networks with GroupNorm/InstanceNorm/LayerNorm (the
transformer baselines, UC-3D-UNet) have nothing foldable: those norms use per-input statistics. Folding removes one
pass over every feature map per BatchNorm; outputs match the unfolded network up to float rounding (tested).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..networks.context_block import ContextBlock

__all__ = ["fold_batchnorm"]


def _bn_slice(bn: nn.BatchNorm3d, start: int, stop: int) -> nn.BatchNorm3d:
    part = nn.BatchNorm3d(stop - start, eps=bn.eps).eval()
    with torch.no_grad():
        part.running_mean.copy_(bn.running_mean[start:stop])
        part.running_var.copy_(bn.running_var[start:stop])
        part.weight.copy_(bn.weight[start:stop])
        part.bias.copy_(bn.bias[start:stop])
    return part


def _fold_sequential(seq: nn.Sequential) -> int:
    n = 0
    for i in range(len(seq) - 1):
        conv, bn = seq[i], seq[i + 1]
        if isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d) and bn.track_running_stats:
            seq[i] = fuse_conv_bn_eval(conv, bn)
            seq[i + 1] = nn.Identity()
            n += 1
    return n


def _fold_context_block(block: ContextBlock) -> int:
    bn = block.fuse[0]
    if not isinstance(bn, nn.BatchNorm3d):
        return 0
    width = bn.num_features // len(block.branches)
    for k, branch in enumerate(block.branches):
        block.branches[k] = fuse_conv_bn_eval(branch, _bn_slice(bn, k * width, (k + 1) * width))
    block.fuse[0] = nn.Identity()
    return 1


def fold_batchnorm(network: nn.Module, inplace: bool = False) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``network`` (or ``network`` itself if ``inplace``) with every foldable BatchNorm3d folded
    into its convolution; returns ``(network, number of BatchNorms folded)``."""
    net = network if inplace else copy.deepcopy(network)
    net.eval()
    n = 0
    for module in list(net.modules()):
        if isinstance(module, ContextBlock):
            n += _fold_context_block(module)
    for module in list(net.modules()):
        if isinstance(module, nn.Sequential):
            n += _fold_sequential(module)
    return net, n
