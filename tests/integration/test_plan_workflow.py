"""Integration: plan an anisotropic (0.7 x 0.7 x 3 mm) phantom set, train one epoch with that plan, infer.

The plan, training and inference run as the real `python -m monai.bundle run ...` commands.
"""
from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import BUNDLE
from tests.integration.test_bundle_workflows import assert_same_grid, bundle_run

pytestmark = pytest.mark.slow  # plans, trains one epoch and infers in subprocesses


@pytest.fixture(scope="module")
def aniso(tmp_path_factory):
    from scripts.data.phantom import make_dataset

    work = tmp_path_factory.mktemp("aniso")
    data = make_dataset(str(work / "data"), n_train=3, n_test=1, seed=40, progress=False,
                        spacing=(0.7, 0.7, 3.0), orientation="RAS", size_scale=0.5)
    models = work / "models"
    bundle_run(["plan", "--config_file", "configs/plan.yaml", "--dataset_dir", data, "--output_dir", str(models),
                "--preset", "cpu"], cwd=BUNDLE)
    return {"work": work, "data": data, "models": models}


def test_plan_is_anisotropic(aniso):
    from scripts.plan.plan_file import load_plan_or_defaults

    plan = load_plan_or_defaults(aniso["models"] / "plan.json", network="spine_context_resunet")
    assert plan["from_plan"]
    sx, sy, sz = plan["spacing"]
    assert sx == pytest.approx(0.7, abs=1e-3) and sy == pytest.approx(0.7, abs=1e-3)
    assert sz > 2 * sx  # nnU-Net keeps the thick axis coarse (anisotropy rule), never 1 mm isotropic
    assert all(p % 8 == 0 for p in plan["patch_size"])
    assert plan["patch_size"] != [128, 128, 64]


def test_training_uses_the_plan_and_inference_stays_on_the_input_grid(aniso, tmp_path):
    from scripts.plan.plan_file import load_plan_or_defaults

    plan = load_plan_or_defaults(aniso["models"] / "plan.json", network="spine_context_resunet")
    proc = bundle_run(
        ["training", "--config_file", "configs/train.yaml", "--dataset_dir", aniso["data"],
         "--ckpt_dir", str(aniso["models"]), "--output_dir", str(aniso["work"] / "eval"), "--epochs", "1",
         "--num_samples", "1"],
        cwd=BUNDLE,
    )
    log = proc.stdout + proc.stderr
    line = next(ln for ln in log.splitlines() if "geometry from" in ln)
    assert "geometry from plan" in line
    spacing = [float(v) for v in re.search(r"spacing \[([^\]]+)\]", line).group(1).split(",")]
    patch = [int(v) for v in re.search(r"patch \[([^\]]+)\]", line).group(1).split(",")]
    np.testing.assert_allclose(spacing, plan["spacing"], atol=1e-3)
    assert patch == plan["patch_size"]
    assert (aniso["models"] / "model.pt").is_file()

    image = next((aniso["work"] / "data" / "imagesTs").glob("*.nii.gz"))
    out = tmp_path / "out"
    bundle_run(["--config_file", "configs/inference.yaml", "--image", str(image), "--output_dir", str(out),
                "--ckpt_path", str(aniso["models"] / "model.pt")], cwd=BUNDLE)
    mask = out / image.name.replace(".nii.gz", "_seg.nii.gz")
    assert_same_grid(image, mask)
    assert nib.load(str(mask)).header.get_zooms()[2] == pytest.approx(3.0, abs=1e-3)
