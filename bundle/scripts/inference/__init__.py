"""Inference helpers: the coarse-to-fine sliding-window inferer, BatchNorm folding and lean post-processing."""
