"""Training checkpoints (scripts/checkpoints.py): atomic writes, the best model kept apart, the run-folder check,
RNG states, and a real training subprocess SIGKILLed after its first checkpoint and resumed."""
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.transforms import Compose, RandFlipd, RandSpatialCropd

from scripts.checkpoints import (
    BestModelSaver,
    BestScore,
    RNGState,
    RunFolderError,
    atomic_save,
    check_run_folder,
    check_validation_set,
)

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
QUICK = "['configs/train.yaml','configs/quick.yaml']"


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")


def test_atomic_save_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "model.pt"
    atomic_save({"w": torch.ones(3)}, str(path))
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"w": _Unpicklable()}, str(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]   # no temporary file left behind
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_run_folder_check_protects_saved_models(tmp_path):
    last = str(tmp_path / "last_model.pt")
    assert check_run_folder(str(tmp_path), last) == str(tmp_path)   # empty folder: a new run
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(RunFolderError, match=r"model\.pt: a trained model is there already; continue its run with "
                                             r"--resume true, train into a new --ckpt_dir, or replace it with "
                                             r"--overwrite true"):
        check_run_folder(str(tmp_path), last)
    check_run_folder(str(tmp_path), last, overwrite=True)
    with pytest.raises(RunFolderError, match=r"last_model\.pt: no last checkpoint to resume from"):
        check_run_folder(str(tmp_path), last, resume=True)
    Path(last).write_bytes(b"x")
    check_run_folder(str(tmp_path), last, resume=True)
    with pytest.raises(RunFolderError, match="exclude each other"):
        check_run_folder(str(tmp_path), last, resume=True, overwrite=True)
    with pytest.raises(RunFolderError, match="the validation set is empty"):
        check_validation_set([], str(tmp_path / "new"))
    assert check_validation_set([{"image": "v.nii.gz"}]) == 1


class _Evaluator:
    def __init__(self):
        self.state = type("S", (), {"metrics": {}, "epoch": 0})()


def test_best_model_is_replaced_only_by_a_strictly_better_score(tmp_path):
    net = torch.nn.Linear(2, 1)
    saver = BestModelSaver(str(tmp_path), net, BestScore("val_mean_dice"))
    engine = _Evaluator()
    written = []
    for epoch, dice in enumerate([0.30, 0.20, 0.30, 0.50, 0.45], start=1):
        with torch.no_grad():
            net.bias.fill_(float(epoch))           # the network changes every epoch
        engine.state.metrics["val_mean_dice"], engine.state.epoch = dice, epoch
        saver(engine)
        written.append(float(torch.load(tmp_path / "model.pt")["bias"]))
    assert written == [1.0, 1.0, 1.0, 4.0, 4.0]   # saved at epochs 1 and 4 only
    assert saver.tracker.state_dict() == {"best_metric": 0.5, "best_epoch": 4}
    resumed = BestModelSaver(str(tmp_path), net, BestScore("val_mean_dice"))
    resumed.tracker.load_state_dict(saver.tracker.state_dict())
    engine.state.metrics["val_mean_dice"], engine.state.epoch = 0.49, 6
    resumed(engine)                                 # a resumed run keeps the tracker: 0.49 < 0.50 is not saved
    assert float(torch.load(tmp_path / "model.pt")["bias"]) == 4.0


def _draws(pipeline) -> list:
    out = pipeline({"image": np.arange(64, dtype=np.float32).reshape(1, 4, 4, 4)})["image"]
    return [float(torch.rand(1)), float(np.random.rand()), random.random(), np.asarray(out).ravel()[:8].tolist()]


def test_rng_state_round_trips_every_generator_through_a_weights_only_load(tmp_path):
    pipeline = Compose([RandSpatialCropd("image", roi_size=(2, 2, 2), random_size=False),
                        RandFlipd("image", prob=0.5, spatial_axis=0)])
    pipeline.set_random_state(seed=3)
    _draws(pipeline)
    state = RNGState(pipeline)
    atomic_save({"rng": state.state_dict()}, str(tmp_path / "rng.pt"))
    expected = _draws(pipeline)
    _draws(pipeline)                                # move every generator on
    state.load_state_dict(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    assert _draws(pipeline) == expected


# ---- a real training run, SIGKILLed after its first checkpoint and resumed ------------------------------------

def _train(work: Path, name: str, *extra: str, epochs: int = 4) -> list[str]:
    return [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", QUICK,
            "--bundle_root", str(BUNDLE), "--ckpt_dir", str(work / name), "--output_dir", str(work / name / "eval"),
            "--phantom_dir", str(work / "phantom"), "--n_phantoms", "3", "--epochs", str(epochs),
            "--val_interval", "1", "--overwrite", "false", *extra]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _epoch_dice(log: str) -> dict[int, float]:
    return {int(e): float(v) for e, v in re.findall(r"Epoch\[(\d+)\] Metrics -- train_mean_dice: ([\d.]+)", log)}


@pytest.mark.slow  # three quick-recipe trainings in subprocesses, one SIGKILLed (494 s measured)
def test_sigkilled_training_resumes_where_it_stopped(tmp_path):
    # reference: the same run, never interrupted
    ref = subprocess.run(_train(tmp_path, "ref"), cwd=BUNDLE, env=_env(), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    ref_dice = _epoch_dice(ref.stderr + ref.stdout)
    assert sorted(ref_dice) == [1, 2, 3, 4]

    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(_train(tmp_path, "run"), cwd=BUNDLE, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    last = tmp_path / "run" / "last_model.pt"
    deadline = time.time() + 600
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert last.exists(), (tmp_path / "killed.log").read_text()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    saved = torch.load(last, weights_only=True)
    epoch_length = saved["trainer"]["epoch_length"]
    killed_at, within = divmod(saved["trainer"]["iteration"], epoch_length)   # ignite stores the iteration
    assert within == 0 and 1 <= killed_at < 4, f"saved at iteration {saved['trainer']['iteration']}"
    assert set(saved) == {"model", "optimizer", "lr_scheduler", "rng", "best", "trainer"}

    again = subprocess.run(_train(tmp_path, "run"), cwd=BUNDLE, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode != 0
    assert "a trained model is there already; continue its run with --resume true" in again.stderr + again.stdout

    resumed = subprocess.run(_train(tmp_path, "run", "--resume", "true"), cwd=BUNDLE, env=_env(),
                             capture_output=True, text=True, timeout=600)
    out = resumed.stderr + resumed.stdout
    assert resumed.returncode == 0, out[-2000:]
    assert f"resuming at epoch {killed_at + 1} (iteration {killed_at * epoch_length}) of 4" in out
    resumed_dice = _epoch_dice(out)
    assert sorted(resumed_dice) == list(range(killed_at + 1, 5))   # no epoch lost, none repeated
    final = torch.load(last, weights_only=True)
    assert final["trainer"]["iteration"] == 4 * epoch_length
    # the resumed run continues the interrupted one exactly: the same per-epoch training Dice and the same weights
    # as the run that was never stopped (RNG states, optimiser moments and LR restored; 1 thread, deterministic)
    for epoch, dice in resumed_dice.items():
        assert dice == pytest.approx(ref_dice[epoch], abs=1e-3), (epoch, dice, ref_dice[epoch])
    ref_final = torch.load(tmp_path / "ref" / "last_model.pt", weights_only=True)
    for key, value in ref_final["model"].items():
        assert torch.allclose(final["model"][key].float(), value.float(), atol=1e-4), key
