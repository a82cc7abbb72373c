"""Inference never loses a result to a name collision (issue 15, item 3).

Before: ``a/ct.nii.gz`` and ``b/ct.nii.gz`` in one datalist both wrote ``out/ct_seg.nii.gz`` (the first result
silently replaced, exit code 0), and a second run into the same folder replaced the first run's masks. Now
``scripts.data.sources.inference_inputs`` stops up front naming both inputs, and inference.yaml refuses to replace an
existing ``<name>_seg.nii.gz`` unless ``--overwrite true``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from scripts.data.sources import inference_inputs
from scripts.data.validation import CaseError
from tests.conftest import BUNDLE


def save_ct(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).normal(40, 300, (48, 48, 32))
    a[0] = -1000
    a[-1, :4] = 1500
    nib.save(nib.Nifti1Image(a.astype(np.int16), np.diag([1.5, 1.5, 2.0, 1.0])), str(path))
    return path


def refused(**kwargs) -> str:
    with pytest.raises(CaseError) as err:
        inference_inputs(**kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_output_names_follow_save_imaged():
    from scripts.data.sources import output_name

    assert output_name("/x/ct.nii.gz") == output_name("/y/ct.nii") == output_name("/z/ct/") == "ct"
    assert output_name("/x/sub-verse014_ct.nii.gz") == "sub-verse014_ct"


def test_two_inputs_with_one_name_in_a_datalist_stop_naming_both(tmp_path):
    a, b = save_ct(tmp_path / "a" / "ct.nii.gz"), save_ct(tmp_path / "b" / "ct.nii.gz", 1)
    datalist = tmp_path / "dl.json"
    datalist.write_text(json.dumps({"testing": [{"image": "a/ct.nii.gz"}, {"image": "b/ct.nii.gz"}]}))
    assert refused(datalist=str(datalist)) == (
        f"{b}: same output name 'ct' as {a}, so one result would replace the other; rename one or infer them into "
        f"separate output folders")


def test_a_folder_with_ct_nii_and_ct_nii_gz_stops(tmp_path):
    save_ct(tmp_path / "ct.nii.gz")
    save_ct(tmp_path / "ct.nii", 1)
    assert "same output name 'ct' as" in refused(dataset_dir=str(tmp_path))


def test_an_earlier_result_is_kept_unless_overwrite(tmp_path):
    image = save_ct(tmp_path / "ct.nii.gz")
    out = tmp_path / "out"
    assert inference_inputs(image=str(image), output_dir=str(out), overwrite=False) == [{"image": str(image)}]
    out.mkdir()
    (out / "ct_seg.nii.gz").write_bytes(b"an earlier result")
    assert refused(image=str(image), output_dir=str(out), overwrite="false") == (
        f"{out / 'ct_seg.nii.gz'}: exists already, from an earlier run; pass --overwrite true to replace it, or "
        f"choose another --output_dir")
    for yes in (True, "true", "True"):      # "true" as it comes from the command line
        assert inference_inputs(image=str(image), output_dir=str(out), overwrite=yes)
    with pytest.raises(ValueError, match="overwrite must be true or false"):
        inference_inputs(image=str(image), output_dir=str(out), overwrite="yes please")


def run_inference(*args, cwd=BUNDLE) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml",
                           "--spacing", "[2.0, 2.0, 2.0]", "--patch_size", "[64, 64, 32]", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_inference_yaml_refuses_collisions_and_keeps_earlier_results(tmp_path):
    a, b = save_ct(tmp_path / "a" / "ct.nii.gz"), save_ct(tmp_path / "b" / "ct.nii.gz", 1)
    datalist = tmp_path / "dl.json"
    datalist.write_text(json.dumps({"testing": [{"image": str(a)}, {"image": str(b)}]}))
    out = tmp_path / "out"
    proc = run_inference("--datalist", str(datalist), "--output_dir", str(out))
    assert proc.returncode != 0 and f"{b}: same output name 'ct' as {a}" in proc.stderr, proc.stderr[-3000:]
    assert not out.exists() or not any(out.iterdir())

    proc = run_inference("--image", str(a), "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = (out / "ct_seg.nii.gz").read_bytes()
    proc = run_inference("--image", str(b), "--output_dir", str(out))           # another ct.nii.gz, same folder
    assert proc.returncode != 0 and f"{out / 'ct_seg.nii.gz'}: exists already" in proc.stderr, proc.stderr[-3000:]
    assert (out / "ct_seg.nii.gz").read_bytes() == first
