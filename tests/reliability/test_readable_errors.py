"""Errors a person can read (issue 15, item 6), and training never destroys a saved model (item 2).

Before: the line naming the file sat ~48 lines above the end of a 66-line traceback that ended in MONAI's
"Failed to instantiate component", with exit code 1; a new training run replaced models/model.pt. Now a bad input
ends ``monai.bundle run`` with exit code 2 and the one-line "<file>: <problem>" as the last line of stderr, no
traceback unless asked for (``SPINE_DEBUG=1``); a run folder holding a model stops a new run up front.
"""
from __future__ import annotations

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from scripts.data.validation import CaseError
from scripts.errors import EXIT_CODE, CaseFailed, NameFailingCase, final_line
from tests.conftest import BUNDLE


def bundle_run(args, env_extra=None, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop("SPINE_DEBUG", None) if not env_extra or "SPINE_DEBUG" not in env_extra else None
    return subprocess.run([sys.executable, "-m", "monai.bundle", "run", *args], cwd=BUNDLE, env=env,
                          capture_output=True, text=True, timeout=timeout)


def last_line(text: str) -> str:
    return [line for line in text.strip().splitlines() if line.strip()][-1]


@pytest.fixture
def normalised(tmp_path):
    bad = tmp_path / "normalised.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 20, 20), dtype=np.float32), np.eye(4)), str(bad))
    return bad


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_bad_inference_input_ends_with_exit_2_and_one_line(normalised, tmp_path):
    out = tmp_path / "out"
    proc = bundle_run(["--config_file", "configs/inference.yaml", "--image", str(normalised), "--output_dir", str(out)])
    assert proc.returncode == EXIT_CODE == 2
    assert last_line(proc.stderr).startswith(f"{normalised}: ")
    assert "Traceback" not in proc.stderr and "Failed to instantiate" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_debug_keeps_the_traceback(normalised, tmp_path):
    proc = bundle_run(["--config_file", "configs/inference.yaml", "--image", str(normalised), "--output_dir",
                       str(tmp_path / "out")], env_extra={"SPINE_DEBUG": "1"})
    assert proc.returncode not in (0, EXIT_CODE)
    assert "Traceback" in proc.stderr and str(normalised) in proc.stderr


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_training_into_a_folder_holding_a_model_stops_before_touching_it(tmp_path):
    ckpt = tmp_path / "models"
    ckpt.mkdir()
    (ckpt / "model.pt").write_bytes(b"shipped")
    proc = bundle_run(["training", "--config_file", "['configs/train.yaml','configs/quick.yaml']", "--ckpt_dir",
                       str(ckpt), "--overwrite", "false", "--phantom_dir", str(tmp_path / "ph"), "--n_phantoms", "2"])
    assert proc.returncode == 2
    assert last_line(proc.stderr) == (f"{ckpt / 'model.pt'}: a trained model is there already; continue its run "
                                      "with --resume true, train into a new --ckpt_dir, or replace it with "
                                      "--overwrite true")
    assert (ckpt / "model.pt").read_bytes() == b"shipped"
    assert not (tmp_path / "ph").exists()      # stopped before any data was made or loaded


def test_a_multi_case_error_ends_with_its_first_case():
    err = CaseError("2 of 3 cases failed validation:\n  a.nii.gz: image is empty\n  b.nii.gz: 2D")
    assert final_line(err) == "2 of 3 cases failed validation; first: a.nii.gz: image is empty"


class _Engine:
    def __init__(self, batch):
        self.state = type("S", (), {"batch": batch})()


def test_a_case_that_crashes_after_the_checks_is_named():
    image = MetaTensor(torch.zeros(1, 1, 4, 4, 4), meta={"filename_or_obj": ["/data/ct_07.nii.gz"]})
    with pytest.raises(CaseFailed, match=r"^/data/ct_07\.nii\.gz: failed during inference: ValueError: "
                                         r"affine has a zero column$"):
        NameFailingCase()(_Engine({"image": image}), ValueError("affine has a zero column\nmore detail"))


def test_an_output_path_that_is_a_file_is_refused_before_inference(tmp_path):
    from scripts.data.sources import check_output_dir

    blocker = tmp_path / "results.txt"
    blocker.write_text("x")
    with pytest.raises(CaseError, match=r"results\.txt/out: .*results\.txt is a file, not a folder"):
        check_output_dir(str(blocker / "out"))
    assert check_output_dir(str(tmp_path / "new" / "out")) == str(tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()     # checked, not created


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_refused(tmp_path):
    from scripts.data.sources import check_output_dir

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with pytest.raises(CaseError, match="the output folder is not writable"):
        check_output_dir(str(ro))


def test_masks_pngs_and_csvs_are_written_atomically(tmp_path, monkeypatch):
    """A writer that dies mid-file leaves neither a partial file nor a temporary one."""
    from scripts.atomic_files import AtomicNibabelWriter, atomic_output

    target = tmp_path / "ct_seg.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"\x1f\x8b partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    writer = AtomicNibabelWriter(output_dtype=np.uint8)
    writer.set_data_array(torch.ones(1, 4, 4, 4), channel_dim=0)
    writer.set_metadata({"affine": np.eye(4), "original_affine": np.eye(4)}, resample=False)
    writer.write(str(target))
    assert [p.name for p in tmp_path.iterdir()] == ["ct_seg.nii.gz"]
    assert nib.load(str(target)).shape == (4, 4, 4)
