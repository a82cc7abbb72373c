"""Outputs that are complete or absent: every file is written under a temporary name in its own folder, then renamed.

A run killed mid-write leaves the previous file (or none), never a truncated one whose header still loads.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator

from monai.data import NibabelWriter


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """``with atomic_output("out/ct_seg.nii.gz") as tmp: write(tmp)``: ``tmp`` is a hidden file beside ``path`` with the
    same extension (writers that choose the format by extension still work); renamed onto ``path`` on success,
    removed on failure."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    ext = ".nii.gz" if name.endswith(".nii.gz") else os.path.splitext(name)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)   # mkstemp makes 0600; give the file the user's usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` (``SaveImaged(writer=...)``) writing through :func:`atomic_output`: a killed run leaves
    no truncated ``_seg.nii.gz`` whose header still loads.

    With ``resample=False`` (inference.yaml) the array is written as given: MONAI's writer still passes it through
    ``SpatialResample``, whose no-op branch returns a float32 copy (1.2 GB for a 1024x1024x300 uint8 mask, the
    inference run's peak) that ``output_dtype`` then casts back to uint8."""

    @classmethod
    def resample_if_needed(cls, data_array, affine=None, target_affine=None, output_spatial_shape=None, **kwargs):
        if target_affine is None and output_spatial_shape is None:
            return data_array, affine
        return super().resample_if_needed(data_array, affine=affine, target_affine=target_affine,
                                          output_spatial_shape=output_spatial_shape, **kwargs)

    def write(self, filename, verbose: bool = False, **obj_kwargs):
        with atomic_output(filename) as tmp:
            super().write(tmp, verbose=False, **obj_kwargs)
        if verbose:
            logging.getLogger(__name__).info(f"writing: {filename}")
