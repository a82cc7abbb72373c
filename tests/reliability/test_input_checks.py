"""Right words and verdicts in the input checks (issue 15, item 9).

Before: a constant image and a CT that is 99% air were both "intensities look normalised" (the 1st and 99th
percentile of a mostly-air CT are both -1000), a 5x5x5 image and an affine with a zero column passed (the latter was
segmented on a meaningless 24x24x16 grid), and a 1024x1024x1000 header was read in full (4 GB of int16, more as
float) before anything could refuse it. Now each gets its own one-line message, a strongly anisotropic spacing is
a warning naming the file, and the memory budget (``max_input_gb``) is judged from the header alone.
"""
from __future__ import annotations

import gzip
import logging
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from scripts.data.validation import (
    MAX_INPUT_GB,
    CaseError,
    check_memory_budget,
    validate_case,
)
from tests.conftest import BUNDLE

SHAPE = (16, 14, 10)


def ct(shape=SHAPE, seed=0):
    a = np.random.default_rng(seed).normal(40, 300, size=shape)
    a[0] = -1000
    a[-1, :2] = 1500
    return a.astype(np.int16)


def save(path, arr, affine=None):
    nib.save(nib.Nifti1Image(arr, np.diag([1.0, 1.0, 2.0, 1.0]) if affine is None else affine), str(path))
    return str(path)


def refused(*args, **kwargs) -> str:
    with pytest.raises(CaseError) as err:
        validate_case(*args, **kwargs)
    assert "\n" not in str(err.value), str(err.value)
    return str(err.value)


def test_a_constant_image_says_so(tmp_path):
    path = save(tmp_path / "flat.nii.gz", np.full(SHAPE, -1000, np.int16))
    assert refused(path) == f"{path}: image is constant (value -1000); it holds no anatomy to segment"
    zeros = save(tmp_path / "zeros.nii.gz", np.zeros(SHAPE, np.float32))
    assert refused(zeros).startswith(f"{zeros}: image is constant (value 0)")


def test_a_label_map_is_not_called_normalised(tmp_path):
    lab = np.zeros(SHAPE, np.uint8)
    lab[4:8, 4:8, 2:6] = 21
    lab[8:12, 4:8, 2:6] = 22
    path = save(tmp_path / "seg.nii.gz", lab)
    msg = refused(path)
    assert msg.startswith(f"{path}: image looks like a label map, not a CT: 3 distinct values 0, 21, 22")
    assert "normalised" not in msg
    norm = save(tmp_path / "norm.nii.gz", np.random.default_rng(0).random(SHAPE).astype(np.float32))
    assert refused(norm).startswith(f"{norm}: intensities look normalised, not HU (range 0")
    assert "label map" not in refused(norm)


def test_a_ct_that_is_mostly_air_is_accepted(tmp_path):
    a = np.random.default_rng(1).normal(-1000, 5, size=(64, 64, 40))
    a[30:32, 30:32, 18:22] = 400          # 16 voxels of bone and tissue in 163,840: 99.99% air
    a[32, 30:32, 18:22] = 40
    assert np.percentile(a, 99) - np.percentile(a, 1) < 200      # the old verdict: "normalised"
    path = save(tmp_path / "air.nii.gz", a.astype(np.int16))
    assert validate_case(path)["hu_range"][1] == 400


def test_a_tiny_image_is_an_error(tmp_path):
    path = save(tmp_path / "tiny.nii.gz", ct((5, 5, 5)))
    assert refused(path) == f"{path}: image is 5x5x5 voxels, too small to segment; every side needs at least 8"
    assert validate_case(save(tmp_path / "ok.nii.gz", ct((8, 8, 8))))["shape"] == (8, 8, 8)


def test_an_affine_with_a_zero_column_is_an_error(tmp_path):
    img = nib.Nifti1Image(ct(), None)
    affine = np.diag([1.5, 0.0, 2.0, 1.0])
    img.header.set_sform(affine, code=1)       # a qform cannot hold it; nibabel writes it as the sform
    img.header.set_qform(None, code=0)
    path = str(tmp_path / "zero_column.nii.gz")
    nib.save(img, path)
    assert refused(path) == (f"{path}: image affine is degenerate (column 1 is zero: voxel sizes 1.5 x 0 x 2 mm); the "
                             f"image has no valid voxel grid")


def test_strong_anisotropy_is_a_warning_naming_file_and_spacing(tmp_path, caplog):
    path = save(tmp_path / "thick.nii.gz", ct(), np.diag([0.5, 0.5, 10.0, 1.0]))
    with caplog.at_level(logging.WARNING, logger="scripts.data.validation"):
        assert validate_case(path)["spacing"] == (0.5, 0.5, 10.0)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [f"{path}: strongly anisotropic spacing 0.5 x 0.5 x 10 mm (ratio 20 > 4): thin structures "
                      f"across the thick direction will be coarse"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scripts.data.validation"):
        validate_case(save(tmp_path / "usual.nii.gz", ct(), np.diag([0.8, 0.8, 3.0, 1.0])))   # ratio 3.75
    assert not caplog.records


def header_only_nifti(path, shape, dtype=np.int16) -> str:
    """A NIfTI header claiming ``shape`` with no voxels behind it (352 bytes on disk)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_sform(np.diag([0.5, 0.5, 0.5, 1.0]), code=1)
    with open(path, "wb") as f:
        header.write_to(f)
        f.write(b"\0" * (int(header["vox_offset"]) - f.tell()))
    return str(path)


def test_the_memory_budget_is_judged_from_the_header(tmp_path):
    big = header_only_nifti(tmp_path / "huge.nii", (1024, 1024, 1000))
    assert refused(big) == (f"{big}: 1024x1024x1000 voxels would need about 16.8 GB to infer (4 bytes x 4 copies per "
                            f"voxel), over the memory budget of {MAX_INPUT_GB:g} GB; crop or downsample it, or raise "
                            f"--max_input_gb")
    assert check_memory_budget("x", (512, 512, 1000)) == pytest.approx(4.19, abs=0.01)     # accepted
    # a raised budget lets the same header through to the voxels (which are not there)
    assert "cannot read image data" in refused(big, max_input_gb=32)
    assert "memory budget of 1 GB" in refused(header_only_nifti(tmp_path / "mid.nii", (512, 512, 1000)),
                                              max_input_gb=1)


def test_a_truncated_nii_gz_is_refused(tmp_path):
    whole = gzip.compress(nib.Nifti1Image(ct((64, 64, 64)), np.eye(4)).to_bytes())
    path = tmp_path / "truncated.nii.gz"
    path.write_bytes(whole[: len(whole) // 2])
    assert refused(str(path)).startswith(f"{path}: cannot read image data: ")


MEASURE = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import scripts.data.datalist  # noqa: F401  monai and torch, imported before the clock starts
from scripts.data.validation import CaseError, validate_case


def peak_mb():   # VmHWM starts afresh at exec (ru_maxrss would carry pytest's peak over from the fork)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024


before = peak_mb()
start = time.perf_counter()
try:
    validate_case(sys.argv[2])
except CaseError as e:
    print(f"{time.perf_counter() - start:.4f} {before:.0f} {peak_mb():.0f} {e}")
"""


@pytest.mark.parametrize("case", ["header_1024x1024x1000", "truncated_nii_gz"])
def test_refusals_are_fast_and_small(tmp_path, case):
    """Measured in a fresh process after its imports: seconds from the call to the refusal, and the process's peak
    RSS (MB) before and after the call."""
    if case == "header_1024x1024x1000":
        path = header_only_nifti(tmp_path / "huge.nii", (1024, 1024, 1000))
    else:   # 256x256x100 int16 (13 MB raw), cut in the middle of its gzip stream
        whole = gzip.compress(nib.Nifti1Image(ct((256, 256, 100)), np.eye(4)).to_bytes(), compresslevel=1)
        path = tmp_path / "truncated.nii.gz"
        path.write_bytes(whole[: len(whole) // 2])
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(BUNDLE), str(path)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    took, before, after, message = proc.stdout.strip().split(" ", 3)
    sys.stderr.write(f"\n[{case}] refused in {float(took) * 1000:.1f} ms, peak RSS {before} -> {after} MB "
                     f"({os.path.getsize(path)} bytes on disk): {message}\n")
    assert ("memory budget" if case.startswith("header") else "cannot read image data") in message
    assert float(took) < 2.0, proc.stdout
    assert float(after) - float(before) < (5 if case.startswith("header") else 100), proc.stdout
