"""The md5 of a file, read in 1 MiB chunks: how the run records, the benchmarks and the release name weights.

Standard library only, so the benchmark's nnU-Net peer environment (no MONAI) can import it too.
"""
from __future__ import annotations

import hashlib
import os


def file_md5(path: str | os.PathLike) -> str:
    """Hex md5 digest of the file at ``path``."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
