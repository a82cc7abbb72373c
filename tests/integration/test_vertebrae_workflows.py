"""Integration: the vertebra-instance inference and evaluation commands with the shipped CPU-recipe weights
(models/vertebrae_cpu), and short step 1 / step 2 trainings into a temporary run folder (the CPU recipe on tiny
phantoms: their best models and sidecars, the run-folder check, --resume true, inference from what they wrote), as
subprocesses from the repository root.

The phantom used here (seed 4242, LPS, 0.8 x 0.8 x 2.5 mm, T8-L3) was never part of any training set (the shipped
weights saw seeds 0-15 of data/phantom_vertebrae).
"""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from scripts.data.phantom import write_case
from scripts.instances.levels import ANATOMICAL_ORDER
from scripts.weights_sidecar import build_network_from_sidecar, read_sidecar
from tests.conftest import BUNDLE, REPO
from tests.integration.test_bundle_workflows import bundle_run

pytestmark = pytest.mark.slow  # trains and runs the vertebra workflows in subprocesses


def config_list(*names: str) -> str:
    return str([f"bundle/configs/{n}.yaml" for n in names])


CONFIGS = config_list("vertebrae_inference", "vertebrae_quick")
EVAL = config_list("train", "vertebrae_train", "vertebrae_quick", "vertebrae_evaluate")
STEP2 = config_list("train", "vertebrae_train", "vertebrae_quick")
HEATMAP = config_list("train", "vertebrae_train", "vertebrae_heatmap", "vertebrae_quick")
# tiny CPU-recipe runs: 5 small phantoms (4 train, 1 validation), 32^3 step 2 patches, a 16x16x32 heatmap
TINY = ["--bundle_root", "bundle", "--n_phantoms", "5", "--phantom_kwargs", "{'size_scale': 0.6}", "--num_samples", "1",
        "--patch_size", "[32, 32, 32]", "--heatmap_shape", "[16, 16, 32]", "--val_interval", "1"]
# The shipped CPU-recipe teacher detected 3 of this phantom's 11 vertebrae (0.27) when measured; a random
# network detects none (the walk stops at once or after fragments), so this separates trained from untrained weights.
MIN_DETECTION = 0.2


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("vcase")
    write_case(str(d / "ct.nii.gz"), str(d / "ct_label.nii.gz"), seed=4242, spacing=(0.8, 0.8, 2.5),
               orientation="LPS", levels=(15, 22), size_scale=0.6)
    return d


def test_inference_writes_vertebra_ids_on_the_input_grid_and_a_matching_table(case, tmp_path):
    bundle_run(["--config_file", CONFIGS, "--bundle_root", "bundle", "--image", str(case / "ct.nii.gz"),
                "--output_dir", str(tmp_path)], cwd=REPO)
    src, out = nib.load(case / "ct.nii.gz"), nib.load(tmp_path / "ct_vertebrae.nii.gz")
    assert out.shape == src.shape and np.allclose(out.affine, src.affine, atol=1e-4)
    assert out.get_data_dtype() == np.uint8
    seg = np.asarray(out.dataobj)
    ids = [int(v) for v in np.unique(seg) if v > 0]
    assert ids and set(ids) <= set(ANATOMICAL_ORDER)
    with open(tmp_path / "ct_vertebrae.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["verse_id"]) for r in rows] == ids
    for r in rows:
        vox = np.argwhere(seg == int(r["verse_id"]))
        assert int(r["voxels"]) == len(vox)
        centre = out.affine @ np.append(vox.mean(0), 1.0)
        got = [float(r[f"centroid_{a}_mm"]) for a in "xyz"]
        assert np.allclose(got, centre[:3], atol=0.06)               # world mm on the input's grid


def test_evaluation_detects_vertebrae_and_writes_per_vertebra_rows(case, tmp_path):
    dl = tmp_path / "list.json"
    dl.write_text(json.dumps({"training": [], "testing": [
        {"image": str(case / "ct.nii.gz"), "label": str(case / "ct_label.nii.gz")}]}))
    proc = bundle_run(["--config_file", EVAL, "--bundle_root", "bundle", "--datalist", str(dl),
                       "--output_dir", str(tmp_path / "eval")], cwd=REPO)
    with open(tmp_path / "eval" / "vertebrae_metrics.csv") as f:
        rows = list(csv.DictReader(f))
    ref = np.asarray(nib.load(case / "ct_label.nii.gz").dataobj)
    assert sorted(int(r["vertebra_id"]) for r in rows) == sorted(int(v) for v in np.unique(ref) if v > 0)
    detected = sum(r["detected"] == "True" for r in rows) / len(rows)
    assert detected >= MIN_DETECTION, proc.stdout[-2000:]
    assert "vertebrae: detection" in proc.stdout


def test_a_missing_image_is_a_one_line_error_and_writes_nothing(tmp_path):
    missing = tmp_path / "nope.nii.gz"
    with pytest.raises(AssertionError, match=f"{missing}: no such file or folder"):
        bundle_run(["--config_file", CONFIGS, "--bundle_root", "bundle", "--image", str(missing),
                    "--output_dir", str(tmp_path / "out")], cwd=REPO)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A 2-epoch step 2 student and a 1-epoch heatmap trained into one run folder with the CPU recipe."""
    work = tmp_path_factory.mktemp("vtrain")
    common = TINY + ["--ckpt_dir", str(work / "models"), "--phantom_dir", str(work / "phantom")]
    step2 = bundle_run(["training", "--config_file", STEP2, *common, "--network_name", "student", "--epochs", "2",
                        "--output_dir", str(work / "eval")], cwd=REPO)
    heat = bundle_run(["training", "--config_file", HEATMAP, *common, "--epochs", "1",
                       "--output_dir", str(work / "eval_heatmap")], cwd=REPO)
    return {"work": work, "models": work / "models", "common": common, "log": step2.stdout + step2.stderr,
            "heat_log": heat.stdout + heat.stderr}


def test_vertebra_trainings_write_best_models_with_sidecars_and_last_checkpoints(tiny_runs):
    models = tiny_runs["models"]
    assert sorted(p.name for p in models.iterdir()) == ["heatmap.json", "heatmap.pt", "last_heatmap.pt",
                                                         "last_student.pt", "student.json", "student.pt"]
    for name, task, patch, threshold, metric in [("student", "vertebra_instance", [32, 32, 32], 0.5, "val_dice"),
                                                 ("heatmap", "vertebra_heatmap", [16, 16, 32], 0.15, "val_heat_dice")]:
        info = read_sidecar(str(models / f"{name}.pt"))
        assert (info["task"], info["patch_size"], info["threshold"], info["validation"]["metric"]) == \
            (task, patch, threshold, metric)
        assert info["spacing"] == [2.0, 2.0, 2.0] and info["intensity"]["a_min"] == -1024.0
        net = build_network_from_sidecar(info)
        net.load_state_dict(torch.load(models / f"{name}.pt", weights_only=True))    # strict
    last = torch.load(models / "last_student.pt", weights_only=True)
    assert set(last) == {"model", "optimizer", "lr_scheduler", "rng", "best", "trainer"}
    assert last["trainer"]["iteration"] == 2 * last["trainer"]["epoch_length"]


def test_a_vertebra_run_folder_is_never_overwritten_and_resumes(tiny_runs):
    args = ["training", "--config_file", STEP2, *tiny_runs["common"], "--network_name", "student",
            "--output_dir", str(tiny_runs["work"] / "eval")]
    with pytest.raises(AssertionError, match="student.pt: a trained model is there already; continue its run"):
        bundle_run(args + ["--epochs", "2"], cwd=REPO)
    proc = bundle_run(args + ["--epochs", "3", "--resume", "true"], cwd=REPO)
    assert "resuming at epoch 3 (iteration" in proc.stdout + proc.stderr
    last = torch.load(tiny_runs["models"] / "last_student.pt", weights_only=True)
    assert last["trainer"]["iteration"] == 3 * last["trainer"]["epoch_length"]


def test_inference_reads_the_weights_a_training_wrote(tiny_runs):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "vertebrae_inference.yaml"))
    parser.update({"bundle_root": str(BUNDLE), "device": "$torch.device('cpu')", "ckpt_dir": str(tiny_runs["models"]),
                   "checkpoint_name": "student.pt"})
    inferer = parser.get_parsed_content("inferer")          # loads heatmap.pt strictly into its sidecar's network
    assert (inferer.patch, inferer.heatmap_shape, inferer.threshold, inferer.spacing) == \
        ((32, 32, 32), (16, 16, 32), 0.15, 2.0)
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(tiny_runs["models"] / "student.pt", weights_only=True))   # strict
