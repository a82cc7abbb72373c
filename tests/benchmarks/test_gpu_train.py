"""The GPU recipe (configs/gpu_recipe.yaml, benchmarks/gpu_train.py) without a GPU: its wall-clock limit
(``time_limit_s``, scripts.handlers.TrainingTimeLimit over ignite's TimeLimit), its parallel data generation, and a
CPU dry run of the whole command on tiny patches."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from ignite.engine import Engine, Events

from tests.conftest import BUNDLE, REPO


def slow_engine(seconds: float = 0.3) -> Engine:
    return Engine(lambda engine, batch: time.sleep(seconds))


def test_time_limit_stops_a_trainer_before_max_epochs(tmp_path):
    from monai.engines import SupervisedEvaluator

    from scripts.checkpoints import LastCheckpoint
    from scripts.handlers import TrainingTimeLimit

    evaluator = SupervisedEvaluator(device=torch.device("cpu"), network=torch.nn.Identity(),
                                    val_data_loader=[{"image": torch.zeros(1, 1, 4, 4, 4),
                                                      "label": torch.zeros(1, 1, 4, 4, 4)}])
    validated = []
    evaluator.add_event_handler(Events.COMPLETED, lambda e: validated.append(e.state.epoch))
    trainer = slow_engine()
    completed = []
    TrainingTimeLimit(1, validator=evaluator).attach(trainer)
    LastCheckpoint(str(tmp_path / "last.pt"), {}).attach(trainer)   # writes at COMPLETED, after the limit's stop
    trainer.add_event_handler(Events.COMPLETED, lambda e: completed.append(e.state.iteration))
    time.sleep(1.2)   # the clock starts with the run, not when the handler is made
    start = time.time()
    state = trainer.run(range(10), max_epochs=100)
    took = time.time() - start
    assert state.epoch == 1 and 3 <= state.iteration <= 6, (state.epoch, state.iteration)   # 1 s of 0.3 s steps
    assert 1.0 < took < 3.0
    assert validated == [1]             # the cut epoch's weights were validated once, at the stop
    assert completed == [state.iteration]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["trainer"]["iteration"] == state.iteration


def test_time_limit_leaves_other_stops_and_short_runs_alone():
    from scripts.handlers import TrainingTimeLimit

    limit = TrainingTimeLimit(60)
    trainer = slow_engine(0.0)
    limit.attach(trainer)
    state = trainer.run(range(3), max_epochs=2)
    assert state.epoch == 2 and not limit.reached()
    with pytest.raises(ValueError):
        TrainingTimeLimit(0)   # ignite's own check, at once


def test_time_limit_is_an_inline_train_handler_off_by_default():
    train = yaml.safe_load((BUNDLE / "configs" / "train.yaml").read_text())
    gpu = yaml.safe_load((BUNDLE / "configs" / "gpu_recipe.yaml").read_text())
    [entry] = [h for h in train["train"]["handlers"] if h["_target_"] == "scripts.handlers.TrainingTimeLimit"]
    assert entry == {"_target_": "scripts.handlers.TrainingTimeLimit", "_disabled_": "$not @time_limit_s",
                     "limit_s": "@time_limit_s", "validator": "@validate#evaluator"}
    assert train["time_limit_s"] == 0 and gpu["time_limit_s"] > 0


def test_parallel_generation_writes_the_same_phantoms(tmp_path):
    from scripts.data.phantom import make_dataset

    make_dataset(str(tmp_path / "one"), n_train=1, n_test=1, progress=False, size_scale=0.3)
    two = make_dataset(str(tmp_path / "two"), n_train=1, n_test=1, progress=False, size_scale=0.3, workers=2)
    assert (tmp_path / "one" / "dataset.json").read_text() == (tmp_path / "two" / "dataset.json").read_text()
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        for path in (tmp_path / "one" / sub).iterdir():
            a, b = nib.load(str(path)), nib.load(os.path.join(two, sub, path.name))
            np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
            np.testing.assert_array_equal(a.affine, b.affine)
    assert make_dataset(two, n_train=1, n_test=1, progress=False, size_scale=0.3, workers=2) == two   # cached


DRY_RUN = ["--fine_s", "3", "--coarse_s", "3", "--budget_s", "900",
           "--device", "cpu", "--patch_size", "[32,32,32]", "--spacing", "[6.0,6.0,6.0]",
           "--n_phantoms", "1", "--phantom_kwargs", "{'size_scale': 0.3}",
           "--mix_weights", "{'phantom': 0.5, 'synthesis': 0.0, 'real': 0.5}",
           "--batch_size", "1", "--num_samples", "1", "--draws_per_epoch", "2", "--num_workers", "2"]


@pytest.mark.slow
def test_cpu_dry_run_of_the_gpu_command(tmp_path, real_dir):
    """The prepared command end to end on CPU: a few steps of each model on 32^3 patches at 6 mm, each ended by its
    3 s time limit, into tmp_path; about 1-2 minutes on 2 cores."""
    out = tmp_path / "gpu"
    shipped = (BUNDLE / "models" / "model.pt").stat().st_mtime_ns
    env = dict(os.environ, OMP_NUM_THREADS="1", SPINE_SHARED_DIR=str(real_dir.parents[1]))
    proc = subprocess.run([sys.executable, "benchmarks/gpu_train.py", str(out), *DRY_RUN], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for name in ("model.pt", "model.json", "last_model.pt", "coarse.pt", "coarse.json", "last_coarse.pt",
                 "model_record.json", "coarse_record.json", "gpu_train.json", "logs/fine/train.log",
                 "logs/coarse/train.log", "logs/fine/command.sh"):
        assert (out / name).is_file(), name
    fine, coarse = json.loads((out / "model.json").read_text()), json.loads((out / "coarse.json").read_text())
    assert fine["network"]["args"] == {} and coarse["network"]["args"] == {"base_filters": 4}
    assert fine["training_record"] == "model_record.json" and fine["validation"]["metric"] == "val_mean_dice"
    for stem, log in (("model", "fine"), ("coarse", "coarse")):
        record = json.loads((out / f"{stem}_record.json").read_text())
        assert {"run", "command", "steps_per_epoch", "recipe", "device", "time_limit_s", "wall_s",
                "trainer_iterations", "steps", "machine_hours", "best", "val_curve"} <= set(record)
        assert record["time_limit_s"] == 3 and record["device"] == "cpu" and record["trainer_iterations"] >= 1
        assert record["best"] is not None and record["val_curve"]
        assert "Reached the time limit: 3 sec" in (out / "logs" / log / "train.log").read_text()
    summary = json.loads((out / "gpu_train.json").read_text())
    assert set(summary["models"]) == {"fine", "coarse"} and summary["total_s"] < 900
    assert "[gpu_train] done" in proc.stdout
    assert (BUNDLE / "models" / "model.pt").stat().st_mtime_ns == shipped       # never written into bundle/models
    assert not (BUNDLE / "data" / "phantom_gpu_recipe").exists()                # the data went under <out>


def test_the_command_refuses_bundle_models():
    proc = subprocess.run([sys.executable, "benchmarks/gpu_train.py", str(BUNDLE / "models")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "never writes into bundle/models" in proc.stderr
