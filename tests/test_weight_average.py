"""configs/ema.yaml: an exponential moving average of the weights (ignite's EMAHandler) is what is validated, saved
as model.pt and kept in the last checkpoint, and a resumed run continues the average instead of restarting it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
CONFIGS = [str(BUNDLE / "configs" / name) for name in ("train.yaml", "quick.yaml", "ema.yaml")]


def _parser(**overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(CONFIGS)
    parser.update({"bundle_root": str(BUNDLE), "device": "$torch.device('cpu')", **overrides})
    return parser


def test_the_average_starts_from_the_online_weights_unless_the_run_resumes():
    fresh = _parser().get_parsed_content("ema")
    # momentum 1.0 at the first step copies the (possibly --pretrained) online weights into the average
    assert fresh._momentum_lambda_obj(1) == 1.0
    assert fresh._momentum_lambda_obj(100) == pytest.approx(0.01)
    assert fresh._momentum_lambda_obj(5000) == pytest.approx(0.01)
    resumed = _parser(resume="true").get_parsed_content("ema")
    assert resumed._momentum_lambda_obj is None and resumed.momentum == 0.01   # the restored average goes on


def test_the_mixin_wires_the_average_into_validation_saving_and_the_checkpoint():
    raw = _parser()
    assert raw["validate#evaluator#network"] == raw["validate#best_model#network"] == "$@ema.ema_model"
    assert raw["train#checkpoint_objects#ema"] == "$@ema.ema_model"
    assert raw["train#trainer#train_handlers"] == "$@train#handlers + [@ema]"


def _train(work: Path, epochs: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "monai.bundle", "run", "training",
            "--config_file", "['configs/train.yaml','configs/quick.yaml','configs/ema.yaml']",
            "--bundle_root", str(BUNDLE), "--ckpt_dir", str(work / "run"), "--output_dir", str(work / "run" / "eval"),
            "--phantom_dir", str(work / "phantom"), "--n_phantoms", "3", "--batch_size", "1", "--epochs", str(epochs),
            "--val_interval", "1", "--overwrite", "false", "--ema_momentum", "0.5", "--ema_warmup_steps", "1", *extra]


@pytest.mark.slow  # two quick-recipe trainings in subprocesses (about 40 s)
def test_model_pt_is_the_average_and_a_resumed_run_continues_it(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    first = subprocess.run(_train(tmp_path, 1), cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, (first.stderr + first.stdout)[-2000:]
    last = torch.load(tmp_path / "run" / "last_model.pt", weights_only=True)
    best = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert last["trainer"]["iteration"] >= 2          # the average then differs from the online weights
    floats = [k for k, v in best.items() if v.is_floating_point()]
    assert all(torch.equal(best[k], last["ema"][k]) for k in floats)          # the validated, saved weights
    assert not all(torch.equal(best[k], last["model"][k]) for k in floats)    # are not the online weights

    # a long warm-up on the resumed run: were the average restarted, its momentum would stay near 1.0 and the
    # average would be (almost) the online weights
    resumed = subprocess.run(_train(tmp_path, 2, "--resume", "true", "--ema_warmup_steps", "1000"), cwd=BUNDLE,
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, (resumed.stderr + resumed.stdout)[-2000:]
    after = torch.load(tmp_path / "run" / "last_model.pt", weights_only=True)
    assert after["trainer"]["iteration"] == 2 * last["trainer"]["iteration"]
    # it goes on at momentum 0.5 instead, so it lies as far from the online weights as after the first run
    assert _gap(after, floats) > 0.1 * _gap(last, floats)


def _gap(checkpoint: dict, keys) -> float:
    """Relative distance of the average from the online weights."""
    diff = sum(float((checkpoint["ema"][k] - checkpoint["model"][k]).float().norm()) ** 2 for k in keys) ** 0.5
    return diff / sum(float(checkpoint["model"][k].float().norm()) ** 2 for k in keys) ** 0.5
