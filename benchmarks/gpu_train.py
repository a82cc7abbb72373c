"""The GPU recipe in one command: the fine model, then the coarse model, on one CUDA GPU in at most 9 minutes.

    python benchmarks/gpu_train.py <out> [--budget_s 540] [--fine_s 240] [--coarse_s 90] [monai.bundle overrides]

From the repository root, after ``pip install -r requirements.txt``. Both models train with
``configs/gpu_recipe.yaml`` merged last over their recipes (fine: train + data_mix + cpu_recipe, 2 mm 64^3;
coarse: train + data_mix + coarse, 4 mm), on one data mix generated once into ``<out>/data``, each ended by
``time_limit_s`` (ignite's ``TimeLimit``). The fine model gets ``--fine_s`` seconds of training; the coarse model
gets ``--coarse_s``, or less when the steps before it overran: what is left of ``--budget_s`` after
``--reserve_s`` for its own start, caching and last validation. Everything goes under ``<out>``, nothing into
``bundle/models``:

    model.pt, model.json, last_model.pt      the fine model (best verse014 Dice), its sidecar, its last checkpoint
    coarse.pt, coarse.json, last_coarse.pt   the coarse spine finder, likewise
    model_record.json, coarse_record.json    benchmarks/training_record.py's record of each (+ time limit, device)
    logs/{fine,coarse}/{command.sh,train.log}, tensorboard/{fine,coarse}/, data/, gpu_train.json (the time split)

Extra arguments are monai.bundle overrides given to both trainings (e.g. ``--overwrite true``, or a CPU dry run:
``--device cpu --patch_size "[32,32,32]" --draws_per_epoch 2 ...``, tests/test_gpu_recipe.py). The real CTs come
from ``$SPINE_SHARED_DIR/data/real`` (default: ``shared/`` beside the repository, else inside it).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
sys.path.insert(0, str(REPO / "benchmarks"))

FINE = ["configs/train.yaml", "configs/data_mix.yaml", "configs/cpu_recipe.yaml", "configs/gpu_recipe.yaml"]
COARSE = ["configs/train.yaml", "configs/data_mix.yaml", "configs/coarse.yaml", "configs/gpu_recipe.yaml"]


def say(msg: str) -> None:
    print(f"[gpu_train] {msg}", flush=True)


def shared_dir() -> Path | None:
    """Where the real CTs are (SPINE_SHARED_DIR as scripts/data/real_cases.py reads it); None if not found."""
    if os.environ.get("SPINE_SHARED_DIR"):
        return Path(os.environ["SPINE_SHARED_DIR"])
    for candidate in (REPO.parent / "shared", REPO / "shared"):
        if (candidate / "data" / "real").is_dir():
            return candidate
    return None


def run_logged(cmd: list[str], log_dir: Path, env: dict) -> int:
    """Run ``cmd`` in bundle/, its output shown and appended to ``log_dir/train.log``; ``command.sh`` records it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "command.sh").write_text(f"#!/usr/bin/env bash\n# benchmarks/gpu_train.py, run in bundle/\ncd bundle\n"
                                        f"{shlex.join(cmd)}\n")
    with open(log_dir / "train.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=BUNDLE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            while chunk := proc.stdout.read1(65536):   # progress bars' carriage returns pass through as they come
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                log.write(chunk)
            return proc.wait()
        except BaseException:
            proc.terminate()
            proc.wait()
            raise


def trainer_state(checkpoint: Path) -> dict:
    """The trainer's own state (epoch, iteration, epoch_length) kept in a last checkpoint."""
    import torch

    return dict(torch.load(checkpoint, map_location="cpu", weights_only=True)["trainer"])


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("out", help="output folder (created); model.pt, coarse.pt and their records go there")
    parser.add_argument("--budget_s", type=float, default=540.0, help="the whole command's wall-clock budget")
    parser.add_argument("--fine_s", type=int, default=240, help="seconds of fine-model training (time_limit_s)")
    parser.add_argument("--coarse_s", type=int, default=90, help="seconds of coarse-model training at most")
    parser.add_argument("--reserve_s", type=float, default=50.0,
                        help="kept back from the budget for the coarse run's start, caching and last validation")
    args, overrides = parser.parse_known_args(argv)
    start = time.monotonic()
    out = Path(args.out).resolve()
    if out == BUNDLE / "models" or BUNDLE / "models" in out.parents:
        parser.error(f"{out}: the GPU recipe never writes into bundle/models; give another folder")
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    shared = shared_dir()
    if shared is None or not (shared / "data" / "real" / "verse014").is_dir():
        say(f"warning: no real CTs found ({shared or 'no shared/ folder'}); verse014 validates both models: "
            "set SPINE_SHARED_DIR to the folder holding data/real")
    elif shared:
        env["SPINE_SHARED_DIR"] = str(shared)
    common = ["--ckpt_dir", str(out), "--phantom_dir", str(out / "data" / "phantom"),
              "--synthesis_dir", str(out / "data" / "synth")]
    say(f"device {device_name()}, budget {args.budget_s:.0f} s: fine model {args.fine_s} s of training, coarse "
        f"model up to {args.coarse_s} s; output in {out}")
    summary: dict = {"budget_s": args.budget_s, "overrides": overrides, "device": device_name(), "models": {}}

    models = [("fine", FINE, "model"), ("coarse", COARSE, "coarse")]
    for name, configs, stem in models:
        if name == "fine":
            limit = args.fine_s
        else:
            left = args.budget_s - (time.monotonic() - start) - args.reserve_s
            limit = max(1, min(args.coarse_s, int(left)))
            if left < args.coarse_s:
                say(f"{left + args.reserve_s:.0f} s of the budget left: coarse training cut to {limit} s")
        cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", repr(configs), *common,
               "--output_dir", str(out / "tensorboard" / name), "--time_limit_s", str(limit),
               "--weights_sidecar#training_record", f"{stem}_record.json", *overrides]
        say(f"{name} model: training for {limit} s ({' + '.join(Path(c).stem for c in configs)})")
        t0 = time.monotonic()
        rc = run_logged(cmd, out / "logs" / name, env)
        wall = time.monotonic() - t0
        summary["models"][name] = {"time_limit_s": limit, "wall_s": round(wall, 1), "exit_code": rc}
        if rc != 0:
            say(f"{name} model: training failed (exit {rc}); see {out / 'logs' / name / 'train.log'}")
            (out / "gpu_train.json").write_text(json.dumps(summary, indent=1) + "\n")
            return rc
        state = trainer_state(out / f"last_{stem}.pt")
        summary["models"][name].update(iterations=int(state["iteration"]), epoch_length=int(state["epoch_length"]))
        say(f"{name} model: {state['iteration']} steps in {wall:.0f} s (training {limit} s, the rest data and "
            f"caching), weights {out / (stem + '.pt')}")

    from training_record import make

    for name, configs, stem in models:
        info = summary["models"][name]
        make(str(out / "logs" / name), steps_per_epoch=info["epoch_length"], out=str(out / f"{stem}_record.json"),
             recipe=" + ".join(configs), device=summary["device"], time_limit_s=info["time_limit_s"],
             wall_s=info["wall_s"], trainer_iterations=info["iterations"], weights=f"{stem}.pt")
    summary["total_s"] = round(time.monotonic() - start, 1)
    (out / "gpu_train.json").write_text(json.dumps(summary, indent=1) + "\n")
    say(f"done in {summary['total_s']:.0f} s of {args.budget_s:.0f} s: {out / 'model.pt'}, {out / 'coarse.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
