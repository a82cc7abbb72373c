"""The parameter-constrained SwinUNETR baseline of the SpineContextResUNet paper, built from MONAI's SwinUNETR.

References: Hatamizadeh et al., "Swin UNETR: Swin Transformers for Semantic Segmentation of Brain Tumors in MRI
Images", BrainLes 2021; the constrained configuration (feature size 12, one block per stage, window 4) is from
Nithurshen & Shigwan (arXiv 2605.20760), ``Comparision Results/SwinUNETR``.
"""
from __future__ import annotations

from monai.networks.nets import SwinUNETR


class SwinUNETRConstrained(SwinUNETR):
    """MONAI SwinUNETR with feature_size 12, depths (1, 1, 1, 1), heads (3, 6, 12, 24), window 4:
    3,746,536 parameters with one input and one output channel. Patch sizes must be divisible by 32."""

    divisor = 32

    def __init__(self, in_channels: int = 1, out_channels: int = 1, feature_size: int = 12) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            feature_size=feature_size,
            depths=(1, 1, 1, 1),
            num_heads=(3, 6, 12, 24),
            window_size=(4, 4, 4),
            spatial_dims=3,
            drop_rate=0.0,
            attn_drop_rate=0.0,
        )
