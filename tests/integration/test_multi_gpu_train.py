"""Integration test: configs/multi_gpu_train.yaml under torchrun with 2 CPU processes (gloo backend).

One epoch of the quick recipe on 6 small phantoms (fold 0 of 3: 4 training, 2 validation cases), 1 volume x 2
patches per iteration, validation once at the end. It checks what DDP training must get right: both ranks train on
disjoint halves of the training set, the validation metric is gathered over the ranks, exactly one checkpoint is
written (a plain state_dict the inference config can load), rank 0 alone writes TensorBoard files and the epoch
logs, and the process group shuts down without a deadlock (rc 0 within the timeout) and is freed on every rank
before the interpreter exits (scripts/distributed.py).
"""
from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a torchrun training with two processes (about a minute on 2 busy cores)

CONFIGS = "['bundle/configs/train.yaml','bundle/configs/quick.yaml','bundle/configs/multi_gpu_train.yaml']"
TIMEOUT_S = 300  # a deadlock shows up as this timeout; the run takes about a minute on 2 busy cores
RANK_LINE = re.compile(r"rank (\d) of 2: (\d+) iterations, val_mean_dice (\S+), last epoch cases (\[.*\])")


def torchrun(args: list[str], timeout: int) -> tuple[int, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
         "-m", "monai.bundle", "run", *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish within {timeout} s (deadlock?):\n{out[-4000:]}")
    return proc.returncode, out


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("mgpu")
    rc, log = torchrun(
        ["training", "--config_file", CONFIGS, "--bundle_root", "bundle",
         "--ckpt_dir", str(work / "models"), "--output_dir", str(work / "eval"), "--phantom_dir", str(work / "phantom"),
         "--n_phantoms", "6", "--data#n_phantom_tests", "0", "--data#n_folds", "3", "--phantom_kwargs#size_scale", "0.5",
         "--epochs", "1", "--val_interval", "1", "--batch_size", "1", "--num_samples", "2", "--cache_rate", "0"],
        timeout=TIMEOUT_S,
    )
    assert rc == 0, f"torchrun failed ({rc}):\n{log[-4000:]}"
    return {"work": work, "log": log}


def test_both_ranks_train_disjoint_halves_and_share_the_validation_metric(ddp_run):
    from scripts.data.datalist import load_datalist

    ranks = {int(m[1]): m for m in RANK_LINE.finditer(ddp_run["log"])}
    assert sorted(ranks) == [0, 1], ddp_run["log"][-3000:]
    training = load_datalist(dataset_dir=str(ddp_run["work"] / "phantom"), fold=0, n_folds=3)["training"]
    assert len(training) == 4
    halves = [set(ast.literal_eval(ranks[r][4])) for r in (0, 1)]  # the case names each rank's DistributedSampler gave it
    assert halves[0].isdisjoint(halves[1]) and len(halves[0]) == len(halves[1]) == 2
    assert halves[0] | halves[1] == {Path(c["image"]).name for c in training}
    assert [int(ranks[r][2]) for r in (0, 1)] == [2, 2]  # 2 cases x 1 epoch, batch 1: both ranks stepped twice
    dice = [float(ranks[r][3]) for r in (0, 1)]  # each rank validated 1 case; the metric is gathered over both
    assert 0.0 <= dice[0] <= 1.0 and dice[0] == dice[1]


def test_one_plain_checkpoint_is_written(ddp_run):
    from scripts.networks import build_network

    models = ddp_run["work"] / "models"
    # rank 0 alone writes the best model, its sidecar and the last checkpoint (no temporary file left behind)
    assert sorted(p.name for p in models.iterdir()) == ["last_model.pt", "model.json", "model.pt"]
    state = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state)  # the unwrapped network, not the DDP wrapper
    last = torch.load(models / "last_model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in last["model"])
    missing, unexpected = build_network("spine_context_resunet").load_state_dict(state, strict=True)
    assert not missing and not unexpected


def test_only_rank_zero_writes_logs_and_tensorboard(ddp_run):
    events = list((ddp_run["work"] / "eval").glob("events.out.tfevents.*"))
    assert events and len({p.name.split(".")[-2] for p in events}) == 1  # one writer process (pid in the name)
    log = ddp_run["log"]
    assert log.count("Epoch[1] Metrics -- train_mean_dice") == 1
    assert log.count("Epoch[1] Metrics -- val_mean_dice") == 1
    assert log.count("Engine run finished") == 2  # rank 0's trainer and evaluator; rank 1 logs warnings only


def test_every_rank_frees_its_process_group_before_exit(ddp_run):
    # A group still alive at interpreter exit keeps gloo worker threads that can abort the rank (SIGABRT) while
    # Python finalizes: scripts/distributed.py. Each rank's finalize must have freed it, not merely destroyed it.
    freed = re.findall(r"rank (\d): process group destroyed and freed", ddp_run["log"])
    assert sorted(freed) == ["0", "1"], ddp_run["log"][-3000:]
    assert "still referenced after destroy_process_group" not in ddp_run["log"]
