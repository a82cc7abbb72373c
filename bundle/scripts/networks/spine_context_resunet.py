"""SpineContextResUNet: a residual 3D U-Net with a dilated-convolution context block at the bottleneck.

Reference: Nithurshen & Shigwan, "SpineContextResUNet: ..." (arXiv 2605.20760);
code: github.com/Nithurshen/SpineContextResUNet, ``src/model.py`` (``SpineResUNet``).
"""
from __future__ import annotations

from collections.abc import Sequence

from .context_block import ContextBlock
from .encoder_decoder import UNetSkeleton
from .residual_block import ResidualBlock


class SpineContextResUNet(UNetSkeleton):
    """Three residual encoder levels (f, 2f, 4f), a :class:`ContextBlock` (4f -> 8f) at 1/8 resolution, three residual
    decoder levels with transposed-conv up-sampling, and a 1x1x1 head.

    With the defaults (``base_filters=16``, dilations (1, 2, 4, 8), one output channel) it has 1,703,841 parameters.
    Returns logits: the reference model ends in a sigmoid, which the bundle applies in its loss and post-processing.
    """

    divisor = 8  # 2 ** poolings: patch sizes divisible by this avoid the trilinear skip resize

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_filters: int = 16,
        dilations: Sequence[int] = (1, 2, 4, 8),
    ) -> None:
        widths = [base_filters * 2**k for k in range(4)]
        super().__init__(
            in_channels,
            out_channels,
            widths,
            block=ResidualBlock,
            bottleneck=ContextBlock(widths[2], widths[3], dilations),
        )
