"""Segmentation networks of the bundle, selectable by name from the configs (``network_name``).

All return logits with ``out_channels`` channels (1 for the binary spine task, 26 for background + VerSe ids 1-25).
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from ..flags import as_bool
from .context_block import ContextBlock
from .residual_block import ResidualBlock
from .resunet import ResUNet
from .slim_unetr import SlimUNETR
from .slim_unetr_pp import SlimUNETRPlusPlus, SlimUNETRPlusPlusLight
from .spine_context_resunet import SpineContextResUNet
from .swin_unetr import SwinUNETRConstrained
from .uc_3d_unet import UC3DUNet
from .unet3d import UNet3D

NETWORKS: dict[str, type[nn.Module]] = {
    "spine_context_resunet": SpineContextResUNet,
    "resunet": ResUNet,
    "unet3d": UNet3D,
    "swin_unetr": SwinUNETRConstrained,
    "uc_3d_unet": UC3DUNet,
    "slim_unetr": SlimUNETR,
    "slim_unetr_pp_light": SlimUNETRPlusPlusLight,
    "slim_unetr_pp": SlimUNETRPlusPlus,
}


def build_network(
    name: str = "spine_context_resunet",
    in_channels: int = 1,
    out_channels: int = 1,
    patch_size: Sequence[int] | None = None,
    channels_last: bool = False,
    args: dict | None = None,
    **kwargs,
) -> nn.Module:
    """Instantiate a network of :data:`NETWORKS` by name, e.g. ``build_network("resunet", out_channels=26)``.

    ``args`` holds the network's own arguments as one dict (the configs' ``network_args``, which the weights'
    sidecar records), merged with ``kwargs``.

    ``patch_size`` (the training/sliding-window patch) is checked against the network's divisor, and passed as
    ``img_size`` to the networks tied to one input size (Slim UNETR and Slim UNETR++, whose position embedding has
    one entry per deepest-stage token). ``channels_last`` returns it through :func:`to_channels_last`.
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network '{name}': choose one of {', '.join(sorted(NETWORKS))}")
    net_cls = NETWORKS[name]
    kwargs = {**dict(args or {}), **kwargs}
    if patch_size is not None:
        check_patch_size(name, patch_size)
        if "img_size" in inspect.signature(net_cls).parameters:
            kwargs.setdefault("img_size", tuple(int(p) for p in patch_size))
    net = net_cls(in_channels=in_channels, out_channels=out_channels, **kwargs)
    return to_channels_last(net) if as_bool(channels_last, "channels_last") else net


def _channels_last_input(module: nn.Module, args: tuple) -> tuple:
    out = []
    for a in args:
        if torch.is_tensor(a) and a.ndim == 5:
            a = a.as_tensor() if hasattr(a, "as_tensor") else a  # a MetaTensor would route every op through meta
            a = a.contiguous(memory_format=torch.channels_last_3d)  # propagation (its __torch_function__)
        out.append(a)
    return tuple(out)


def to_channels_last(network: nn.Module) -> nn.Module:
    """``network`` (in place) in channels-last 3D memory format (NDHWC): its 5-D weights are converted and a forward
    pre-hook converts each 5-D input (a MetaTensor to a plain tensor: the network needs no meta data, and MONAI's
    engines and sliding window give their outputs the input's type again), so the convolutions take oneDNN's channels-last kernels in training and
    inference alike. The state_dict keeps its keys and values; only the strides differ. On the 2-core CPU a
    SpineContextResUNet training step (2 MetaTensor patches of 64^3, DiceCE, Adam) takes about 1.45 s here against
    2.3 s channels-first; converting the weights alone, without the input, gains little."""
    for tensor in list(network.parameters()) + list(network.buffers()):
        if tensor.ndim == 5:  # 3-D convolution weights; a network's 2-D convolutions (uC 3DU-Net) stay as they are
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last_3d)
    network.register_forward_pre_hook(_channels_last_input)
    return network


def patch_divisor(name: str) -> int:
    """The number every patch dimension of network ``name`` must be divisible by (2 ** number of poolings)."""
    return int(NETWORKS[name].divisor)


def check_patch_size(name: str, patch_size) -> None:
    """Raise a one-line ValueError naming the network and the rule when ``patch_size`` does not fit it."""
    div = patch_divisor(name)
    bad = [int(s) for s in patch_size if int(s) % div]
    if bad:
        raise ValueError(f"network '{name}' needs every patch dimension divisible by {div}; got {list(patch_size)}")


__all__ = [
    "NETWORKS",
    "to_channels_last",
    "ContextBlock",
    "ResUNet",
    "ResidualBlock",
    "SlimUNETR",
    "SlimUNETRPlusPlus",
    "SlimUNETRPlusPlusLight",
    "SpineContextResUNet",
    "SwinUNETRConstrained",
    "UC3DUNet",
    "UNet3D",
    "build_network",
    "check_patch_size",
    "patch_divisor",
]
