"""Integration tests: the bundle's real commands (`python -m monai.bundle run ...`) as subprocesses.

One short CPU training on phantoms (configs/quick.yaml: 2 mm, 64x64x32 patches, 6 phantoms, 12 epochs; about
2-3 minutes on 2 cores) is shared by the tests of this module: it must learn, its checkpoint must reload, evaluate
must write per-case metrics, and inference must write masks on the input's grid.
"""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.conftest import BUNDLE, REPO

pytestmark = pytest.mark.slow  # each module fixture trains the quick recipe in a subprocess (minutes)

# Learning threshold. On the phantom test cases the spine occupies a few percent of the voxels (p ~ 0.02-0.05), so
# a constant "all spine" prediction scores Dice 2p/(1+p) <= 0.1 and "no spine" scores 0; the untrained network
# scores ~0.02 (measured). A held-out mean Dice of 0.5 can only be reached by a model that learned where the
# vertebrae are; the quick run reaches well above it (see README).
LEARNED_DICE = 0.5

QUICK = "['configs/train.yaml','configs/quick.yaml']"
QUICK_EVAL = "['configs/train.yaml','configs/quick.yaml','configs/evaluate.yaml']"


def bundle_run(args: list[str], cwd: Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise AssertionError(f"monai.bundle run {' '.join(args)} failed ({proc.returncode}):\n{tail}")
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train the quick recipe once, from the repository root with --bundle_root (outputs redirected to tmp)."""
    work = tmp_path_factory.mktemp("quick")
    proc = bundle_run(
        ["training", "--config_file", QUICK.replace("configs/", "bundle/configs/"),
         "--bundle_root", "bundle", "--ckpt_dir", str(work / "models"), "--output_dir", str(work / "eval"),
         "--phantom_dir", str(work / "phantom")],
        cwd=REPO,
    )
    return {"work": work, "log": proc.stdout + proc.stderr, "ckpt": work / "models" / "model.pt"}


def test_training_writes_a_reloadable_best_checkpoint(trained):
    from scripts.networks import build_network

    assert trained["ckpt"].is_file()
    state = torch.load(trained["ckpt"], map_location="cpu", weights_only=True)
    net = build_network("spine_context_resunet")
    missing, unexpected = net.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    assert "val_mean_dice" in trained["log"] and "Epoch [" in trained["log"]  # metric log + progress bar


@pytest.fixture(scope="module")
def evaluated(trained):
    """evaluate.yaml merged over the recipe, run from bundle/ with the run id `run` (the default)."""
    work = trained["work"]
    proc = bundle_run(
        ["--config_file", QUICK_EVAL, "--bundle_root", str(work), "--ckpt_dir", str(work / "models"),
         "--phantom_dir", str(work / "phantom")],
        cwd=BUNDLE,
    )
    with open(work / "eval" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"rows": rows, "log": proc.stdout + proc.stderr}


def test_evaluate_writes_per_case_metrics(evaluated):
    rows = evaluated["rows"]
    assert list(rows[0]) == ["case", "dice", "iou", "voe", "hd95_mm", "assd_mm", "ari"]
    assert rows[-1]["case"] == "mean" and len(rows) == 1 + 4  # the 4 held-out phantom test cases + mean
    for row in rows:
        values = [float(row[k]) for k in ("dice", "iou", "voe", "hd95_mm", "assd_mm", "ari")]
        assert all(math.isfinite(v) for v in values), row
        assert abs(float(row["voe"]) - (1 - float(row["iou"]))) < 1e-5
    assert "mean Dice" in evaluated["log"]


def test_short_training_learns_the_spine(evaluated):
    mean_dice = float(evaluated["rows"][-1]["dice"])
    assert mean_dice >= LEARNED_DICE, f"held-out phantom Dice {mean_dice:.3f} < {LEARNED_DICE}"


def infer(trained, image: Path, out: Path, from_repo_root: bool = False) -> Path:
    """Run inference.yaml (run id `run`) from bundle/, or from the repository root with --bundle_root."""
    where = ["--config_file", "bundle/configs/inference.yaml", "--bundle_root", "bundle"] if from_repo_root else \
        ["--config_file", "configs/inference.yaml"]
    bundle_run(
        [*where, "--image", str(image), "--output_dir", str(out), "--ckpt_path", str(trained["ckpt"])],   # the
        # quick model's geometry (2 mm, 64x64x32) comes from its sidecar, model.json
        cwd=REPO if from_repo_root else BUNDLE,
    )
    name = image.name.replace(".nii.gz", "")
    assert (out / f"{name}_qc.png").is_file()
    return out / f"{name}_seg.nii.gz"


def assert_same_grid(image: Path, mask: Path):
    img, seg = nib.load(str(image)), nib.load(str(mask))
    assert seg.shape == img.shape
    np.testing.assert_allclose(seg.affine, img.affine, atol=1e-4)
    assert seg.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1}


def test_inference_on_verse014_keeps_the_pir_grid(trained, real_dir, tmp_path):
    image = real_dir / "verse014" / "sub-verse014_ct.nii.gz"
    mask = infer(trained, image, tmp_path)
    assert_same_grid(image, mask)
    assert nib.aff2axcodes(nib.load(str(mask)).affine) == ("P", "I", "R")


def test_inference_on_an_lps_phantom_keeps_its_grid(trained, tmp_path):
    from scripts.data.phantom import write_case

    image = tmp_path / "lps_case.nii.gz"
    write_case(str(image), None, seed=123, orientation="LPS", size_scale=0.5)
    mask = infer(trained, image, tmp_path / "out", from_repo_root=True)
    assert_same_grid(image, mask)
    assert nib.aff2axcodes(nib.load(str(mask)).affine) == ("L", "P", "S")
    assert np.asarray(nib.load(str(mask)).dataobj).sum() > 0


def test_inference_rejects_a_bad_input_naming_the_file(tmp_path):
    bad = tmp_path / "normalised.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 20, 20), dtype=np.float32), np.eye(4)), str(bad))
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml", "--image", str(bad),
         "--output_dir", str(tmp_path / "out")],
        cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert f"{bad}:" in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # no partial output
