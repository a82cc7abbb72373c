"""The record of a (possibly resumed, multi-segment) training run, from its log: the validation curve against steps
and machine-hours, the learning rate, and where each segment resumed.

A run folder (e.g. ``training_runs/phantom_synthesis_2mm``) holds ``command.sh`` (how each segment was started),
``train.log`` (every segment's output, appended) and the checkpoints. The record counts the seconds the trainer and
the evaluator logged for each completed epoch; data caching, and an epoch cut short by a stop (at most one per
stop, repeated after the resume), are not counted.

    python benchmarks/training_record.py make training_runs/phantom_synthesis_2mm --steps_per_epoch 100 \\
        [--out training_runs/phantom_synthesis_2mm/record.json]
"""
from __future__ import annotations

import json
import re
from pathlib import Path

_TIME = r"(\d+):(\d+):(\d+(?:\.\d+)?)"
_VAL = re.compile(r"^(\S+ \S+) - INFO - Epoch\[(\d+)\] Metrics -- val_mean_dice: ([\d.]+)")
_DONE = re.compile(r"SupervisedTrainer - INFO - Epoch\[(\d+)\] Complete\. Time taken: " + _TIME)
_VAL_DONE = re.compile(r"SupervisedEvaluator - INFO - Epoch\[(\d+)\] Complete\. Time taken: " + _TIME)
_LR = re.compile(r"Current learning rate: ([\d.e-]+)")
_RESUME = re.compile(r"resuming at epoch (\d+) \(iteration (\d+)\)")


def _seconds(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


def parse_log(text: str, steps_per_epoch: int, paused_s: dict | None = None) -> dict:
    """Curve, hours and segments from the text of ``train.log`` (progress-bar carriage returns allowed).
    ``paused_s``: ``{epoch: seconds}`` the process was stopped (SIGSTOP) within that epoch, taken off its time."""
    paused = {int(k): float(v) for k, v in (paused_s or {}).items()}
    curve: dict[int, dict] = {}
    seconds, segments, lr = 0.0, [], None
    for line in text.replace("\r", "\n").splitlines():
        if m := _RESUME.search(line):
            segments.append({"resumed_at_epoch": int(m.group(1)), "iteration": int(m.group(2))})
        elif m := _DONE.search(line):
            epoch = int(m.group(1))
            seconds += _seconds(*m.groups()[1:]) - paused.pop(epoch, 0.0)
            if epoch in curve:
                curve[epoch]["hours"] = round(seconds / 3600, 4)
        elif m := _VAL_DONE.search(line):
            seconds += _seconds(*m.groups()[1:])
        elif m := _LR.search(line):
            lr = float(m.group(1))
        elif m := _VAL.search(line):
            epoch = int(m.group(2))
            curve[epoch] = {"epoch": epoch, "step": epoch * int(steps_per_epoch), "val_dice": float(m.group(3)),
                            "time": m.group(1).split(",")[0], "lr": lr}   # lr: printed after the previous epoch
    points = [curve[e] for e in sorted(curve)]
    for p in points:
        p.setdefault("hours", round(seconds / 3600, 4))
    best = max(points, key=lambda p: p["val_dice"]) if points else None
    return {"steps": points[-1]["step"] if points else 0, "machine_hours": round(seconds / 3600, 3),
            "segments": len(segments) + (1 if points else 0), "resumes": segments,
            "best": {k: best[k] for k in ("epoch", "step", "val_dice")} if best else None, "val_curve": points}


def make(run_dir: str, steps_per_epoch: int = 100, out: str | None = None, paused_s: dict | None = None,
         **extra) -> dict:
    """Write ``<run_dir>/record.json`` (or ``out``) from ``<run_dir>/train.log``; ``extra`` keys are added.
    ``paused_s`` (``{epoch: seconds}``): time the run was stopped for other measurements, not counted as training."""
    run = Path(run_dir)
    log = run / "train.log"
    if not log.is_file():
        raise SystemExit(f"{log}: no training log")
    record = {"run": run.name, "command": (run / "command.sh").read_text() if (run / "command.sh").is_file() else "",
              "steps_per_epoch": int(steps_per_epoch), **({"paused_s": paused_s} if paused_s else {}), **extra,
              **parse_log(log.read_text(errors="replace"), int(steps_per_epoch), paused_s)}
    path = Path(out) if out else run / "record.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    b = record["best"]
    print(f"{path}: {record['steps']} steps, {record['machine_hours']} machine-hours, {record['segments']} segment(s)"
          + (f", best verse014 Dice {b['val_dice']:.4f} at step {b['step']}" if b else ""))
    return record


if __name__ == "__main__":
    import fire

    fire.Fire({"make": lambda *args, **kwargs: make(*args, **kwargs) and None})   # print the summary line only
