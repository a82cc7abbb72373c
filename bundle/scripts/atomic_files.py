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
    no truncated ``_seg.nii.gz`` whose header still loads."""

    def write(self, filename, verbose: bool = False, **obj_kwargs):
        with atomic_output(filename) as tmp:
            super().write(tmp, verbose=False, **obj_kwargs)
        if verbose:
            logging.getLogger(__name__).info(f"writing: {filename}")
