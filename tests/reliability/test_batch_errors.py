"""Batches keep going (issue 15, item 7).

Before: one bad case in a folder or datalist ended the whole inference run: a case failing the checks stopped it
before any inference, a case crashing later stopped it after the cases before it (named ``<unknown case>`` when
it crashed in the loader). Now ``--on_error skip`` (the default for folders and datalists) names each bad case in
one line, leaves it out, writes every good case, lists the failures at the end and in
``<output_dir>/inference_failures.json``, and exits with code 2; ``--on_error stop`` ends the run at the first.

The case that passes the checks but crashes while loading is a real one: a 5D NIfTI (x, y, z, 1, 1), which the checks
accept (trailing singleton dimensions) and MONAI's ``Orientationd`` refuses ("axcodes must match data_array
spatially") when the reader keeps the singletons. inference.yaml's NibabelReader now squeezes them (the file is a
common export artefact and is segmented, see the last test), so these tests load with MONAI's plain reader list
(``PLAIN_READERS``), the one that crashed. No other file was found that passes the checks and fails in the loader:
the checks read every voxel, so a truncated data block is refused there ("cannot read image data").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from scripts.errors import EXIT_CODE
from scripts.inference.batch import FAILURES_FILE, BatchFailed, CaseFailures
from tests.conftest import BUNDLE


def save_ct(path, seed=0, shape=(48, 48, 32)):
    a = np.random.default_rng(seed).normal(40, 300, shape)
    a[0] = -1000
    a[-1, :4] = 1500
    nib.save(nib.Nifti1Image(a.astype(np.int16), np.diag([1.5, 1.5, 2.0, 1.0])), str(path))
    return path


def save_normalised(path):
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((24, 24, 24), dtype=np.float32), np.eye(4)), str(path))
    return path


#: inference.yaml's LoadImaged readers without squeeze_non_spatial_dims: the 5D file crashes in Orientationd again
PLAIN_READERS = ("--preprocessing#transforms#0#reader", "[PydicomReader, NibabelReader]")


def run_inference(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SPINE_DEBUG"}
    return subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml",
                           "--spacing", "[2.0, 2.0, 2.0]", "--patch_size", "[64, 64, 32]", *args],
                          cwd=BUNDLE, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)


def last_line(text: str) -> str:
    return [line for line in text.strip().splitlines() if line.strip()][-1]


@pytest.fixture
def batch(tmp_path):
    """a_good, b_normalised (fails the checks), c_five_d (passes them, crashes in the loader), d_good."""
    folder = tmp_path / "cts"
    folder.mkdir()
    save_ct(folder / "a_good.nii.gz", 0)
    save_normalised(folder / "b_normalised.nii.gz")
    save_ct(folder / "c_five_d.nii.gz", 2, shape=(48, 48, 32, 1, 1))
    save_ct(folder / "d_good.nii.gz", 3)
    return folder


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_skip_writes_the_good_cases_and_lists_the_bad(batch, tmp_path):
    out = tmp_path / "out"
    proc = run_inference("--dataset_dir", str(batch), "--output_dir", str(out), *PLAIN_READERS)
    assert proc.returncode == EXIT_CODE == 2, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["a_good_qc.png", "a_good_seg.nii.gz", "d_good_qc.png",
                                                     "d_good_seg.nii.gz", FAILURES_FILE]   # no temporary files
    assert nib.load(str(out / "d_good_seg.nii.gz")).shape == (48, 48, 32)
    bad_checks, bad_load = batch / "b_normalised.nii.gz", batch / "c_five_d.nii.gz"
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == (f"{out / FAILURES_FILE}: 2 of 4 cases failed and have no output (2 written to {out}); the "
                         f"list above is in this file")
    assert lines[-3].startswith(f"{bad_checks}: intensities look normalised, not HU")
    assert lines[-2] == (f"{bad_load}: failed while loading: ValueError: axcodes must match data_array spatially, "
                         f"got axcodes=3D data_array=4D (in Orientationd)")
    assert "Traceback" not in proc.stderr
    assert f"skipped: {bad_checks}: intensities look normalised" in proc.stdout   # said as soon as it was found
    record = json.loads((out / FAILURES_FILE).read_text())
    assert (record["n_cases"], record["n_failed"], record["n_written"]) == (4, 2, 2)
    assert [(f["image"], f["stage"]) for f in record["failures"]] == [(str(bad_checks), "checks"),
                                                                      (str(bad_load), "loading")]


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_stop_ends_the_run_at_the_first_bad_case(batch, tmp_path):
    out = tmp_path / "out"
    proc = run_inference("--dataset_dir", str(batch), "--output_dir", str(out), "--on_error", "stop",
                         *PLAIN_READERS)
    assert proc.returncode == 2
    assert last_line(proc.stderr).startswith(f"{batch / 'b_normalised.nii.gz'}: intensities look normalised")
    assert not out.exists() or not any(out.iterdir())      # checked before any inference, as before

    (batch / "b_normalised.nii.gz").unlink()                # now the first bad case is the one that crashes later
    proc = run_inference("--dataset_dir", str(batch), "--output_dir", str(out), "--on_error", "stop",
                         *PLAIN_READERS)
    assert proc.returncode == 2
    assert last_line(proc.stderr) == (f"{batch / 'c_five_d.nii.gz'}: failed while loading: ValueError: axcodes must "
                                      f"match data_array spatially, got axcodes=3D data_array=4D (in Orientationd)")
    assert sorted(p.name for p in out.iterdir()) == ["a_good_qc.png", "a_good_seg.nii.gz"]   # d_good never ran


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_a_case_that_fails_while_saving_is_skipped_and_leaves_nothing(batch, tmp_path):
    """A real failure in MONAI's SaveImaged: the mask's name is taken by a folder (with --overwrite true the checks
    let it through), so the atomic writer's rename fails; it leaves no temporary file and the case gets no QC
    picture either."""
    for bad in ("b_normalised.nii.gz", "c_five_d.nii.gz"):
        (batch / bad).unlink()
    out = tmp_path / "out"
    (out / "a_good_seg.nii.gz").mkdir(parents=True)
    proc = run_inference("--dataset_dir", str(batch), "--output_dir", str(out), "--overwrite", "true")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["a_good_seg.nii.gz", "d_good_qc.png", "d_good_seg.nii.gz",
                                                     FAILURES_FILE]
    assert (out / "a_good_seg.nii.gz").is_dir() and not any((out / "a_good_seg.nii.gz").iterdir())
    assert proc.stderr.strip().splitlines()[-2] == (     # SaveImage's own words for its writer's IsADirectoryError
        f"{batch / 'a_good.nii.gz'}: failed during inference: RuntimeError: SaveImage cannot find a suitable writer "
        f"for {out / 'a_good_seg.nii.gz'}. (in SaveImaged)")
    assert last_line(proc.stderr).endswith(": 1 of 2 cases failed and have no output (1 written to "
                                           f"{out}); the list above is in this file")


class _Engine:
    """Stands in for the SupervisedEvaluator: its ``_iteration`` writes some outputs, then fails or not."""

    def __init__(self, out, fail: bool):
        self.out, self.fail = out, fail

    def _iteration(self, engine, batch):
        (self.out / "ct_seg.nii.gz").write_bytes(b"a mask")
        if self.fail:
            raise OSError("No space left on device\nmore")
        (self.out / "ct_qc.png").write_bytes(b"a picture")
        return {"pred": 1}


def batch_of(path):
    import torch
    from monai.data import MetaTensor

    return {"image": MetaTensor(torch.zeros(1, 1, 2, 2, 2), meta={"filename_or_obj": [str(path)]})}


def test_a_case_failing_mid_save_leaves_no_output_and_keeps_earlier_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "ct_qc.png").write_bytes(b"an earlier run's picture")
    failures = CaseFailures(on_error="skip", output_dir=str(out))
    assert failures.iteration(_Engine(out, fail=True), batch_of("/data/ct.nii.gz")) is None
    assert sorted(p.name for p in out.iterdir()) == ["ct_qc.png"]       # this attempt's mask removed, not the old file
    assert failures.failures == [{"image": "/data/ct.nii.gz", "stage": "inference", "error": "/data/ct.nii.gz: failed "
                                  "during inference: OSError: No space left on device"}]
    assert failures.iteration(_Engine(out, fail=False), batch_of("/data/ct.nii.gz")) == {"pred": 1}
    with pytest.raises(BatchFailed) as err:
        failures.finish()
    assert err.value.summary_line.startswith(f"{out / FAILURES_FILE}: 1 of 2 cases failed")
    with pytest.raises(OSError):
        CaseFailures(on_error="stop", output_dir=str(out)).iteration(_Engine(out, fail=True), batch_of("/d/ct.nii"))


def test_nothing_failed_writes_no_summary(tmp_path):
    failures = CaseFailures(output_dir=str(tmp_path))
    failures.finish()
    assert not (tmp_path / FAILURES_FILE).exists()
    with pytest.raises(ValueError, match="on_error: must be 'skip' or 'stop', got 'go on'"):
        CaseFailures(on_error="go on")


@pytest.mark.parametrize("given, expected", [({"image": "ct.nii.gz"}, "stop"), ({"datalist": "dl.json"}, "skip"),
                                             ({"dataset_dir": "cts"}, "skip"),
                                             ({"dataset_dir": "cts", "on_error": "stop"}, "stop")])
def test_on_error_defaults_to_skip_for_folders_and_datalists(given, expected):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.yaml"))
    parser.update({"bundle_root": str(BUNDLE), **given})
    assert parser.get_parsed_content("on_error") == expected
    assert parser.get_parsed_content("case_failures").on_error == expected


def test_a_failure_is_named_by_its_innermost_cause_and_transform():
    from scripts.errors import failure_text

    def raise_chain():
        try:
            try:
                raise IsADirectoryError("[Errno 21] Is a directory\nmore")
            except OSError as e:
                raise RuntimeError("applying transform <monai.transforms.io.dictionary.SaveImaged object at 0x1>") \
                    from e
        except RuntimeError as e:
            raise RuntimeError("applying transform <monai.transforms.compose.Compose object at 0x2>") from e

    with pytest.raises(RuntimeError) as err:
        raise_chain()
    assert failure_text(err.value) == "IsADirectoryError: [Errno 21] Is a directory (in SaveImaged)"
    assert failure_text(ValueError("plain")) == "ValueError: plain"


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_a_five_d_nifti_with_singleton_dimensions_is_segmented(tmp_path):
    """(x, y, z, 1, 1) and (x, y, z, 1) exports load as the 3D volume they are (NibabelReader's
    squeeze_non_spatial_dims) and get a 3D mask on their grid."""
    folder = tmp_path / "cts"
    folder.mkdir()
    save_ct(folder / "five_d.nii.gz", 2, shape=(48, 48, 32, 1, 1))
    save_ct(folder / "four_d.nii.gz", 3, shape=(48, 48, 32, 1))
    out = tmp_path / "out"
    proc = run_inference("--dataset_dir", str(folder), "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("five_d", "four_d"):
        mask = nib.load(str(out / f"{name}_seg.nii.gz"))
        assert mask.shape == (48, 48, 32) and mask.get_data_dtype() == np.uint8
        assert np.allclose(mask.affine, np.diag([1.5, 1.5, 2.0, 1.0]))


@pytest.mark.slow  # two bundle runs of the two-step vertebra inference
def test_vertebra_inference_skips_a_bad_case_and_writes_the_good(batch, tmp_path):
    """configs/vertebrae_inference.yaml runs a folder like inference.yaml: the checks and the loader name the bad
    cases, the good ones get their mask and table, the run ends with the list and exit code 2."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "SPINE_DEBUG"}
    (batch / "c_five_d.nii.gz").unlink()
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                           "['configs/vertebrae_inference.yaml','configs/vertebrae_quick.yaml']",
                           "--dataset_dir", str(batch), "--output_dir", str(out)],
                          cwd=BUNDLE, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == EXIT_CODE, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["a_good_vertebrae.csv", "a_good_vertebrae.nii.gz",
                                                     "d_good_vertebrae.csv", "d_good_vertebrae.nii.gz", FAILURES_FILE]
    assert last_line(proc.stderr) == (f"{out / FAILURES_FILE}: 1 of 3 cases failed and have no output (2 written to "
                                      f"{out}); the list above is in this file")
    assert "Traceback" not in proc.stderr
    again = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                            "['configs/vertebrae_inference.yaml','configs/vertebrae_quick.yaml']",
                            "--image", str(batch / "a_good.nii.gz"), "--output_dir", str(out)],
                           cwd=BUNDLE, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert again.returncode == EXIT_CODE
    assert last_line(again.stderr).startswith(f"{out / 'a_good_vertebrae.nii.gz'}: exists already, from an earlier run")
