"""Data ablation: the same network, recipe and step budget trained on each data mix, then scored on the real CTs.

Each row trains ``configs/train.yaml`` + ``configs/data_mix.yaml`` with its ``mix_weights`` (a fresh process, its own
``ckpt_dir``), then runs the real-CT benchmark (``benchmarks/real_ct.py``) on the row's best checkpoint, whole
volume at the training spacing. Every row sees the same number of optimiser steps: ``draws_per_epoch`` x ``epochs``
(one volume, ``num_samples`` patches, per step). Rows whose results exist are skipped, so an interrupted run
continues where it stopped. The table records which real cases each row trained on.

    cd bundle && OMP_NUM_THREADS=2 python ../benchmarks/data_ablation.py run [--rows phantom,phantom_synthesis] \\
        [--out_dir runs/data_ablation] [--epochs 12 --draws_per_epoch 50]
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
HERE = Path(__file__).resolve().parent

#: row name -> (mix_weights of configs/data_mix.yaml, the phantom generator version the row needs or None). The v1
#: rows ran with phantom GENERATOR_VERSION 1 (the generator before phantom v2, commit 1a108cf); today's code makes v2,
#: so they are kept as records and refuse to rerun.
ROWS: dict[str, tuple[dict[str, float], int | None]] = {
    "phantom_v1": ({"phantom": 1.0}, 1),
    "phantom_v1_synthesis": ({"phantom": 0.5, "synthesis": 0.5}, 1),
    "phantom_v2": ({"phantom": 1.0}, 2),
    "phantom_v2_synthesis": ({"phantom": 0.5, "synthesis": 0.5}, 2),
    "phantom_v2_synthesis_real": ({"phantom": 0.3, "synthesis": 0.5, "real": 0.2}, 2),
    "synthesis": ({"synthesis": 1.0}, None),
}
#: the recipe every row shares (a CPU recipe: 2 mm, 64^3 patches of 128 mm)
RECIPE = {"use_plan": False, "spacing": [2.0, 2.0, 2.0], "patch_size": [64, 64, 64], "batch_size": 1, "num_samples": 2,
          "val_interval": 1}


def _args(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() for a in (f"--{k}", json.dumps(v) if not isinstance(v, str) else v)]


def train_row(name: str, weights: dict, row_dir: Path, epochs: int, draws_per_epoch: int) -> dict:
    ckpt_dir = row_dir / "models"
    log = row_dir / "train.log"
    overrides = {**RECIPE, "mix_weights": weights, "epochs": epochs, "draws_per_epoch": draws_per_epoch,
                 "ckpt_dir": str(ckpt_dir), "output_dir": str(row_dir / "eval")}
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file",
           "['configs/train.yaml','configs/data_mix.yaml']", "--bundle_root", str(BUNDLE), *_args(overrides)]
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=BUNDLE, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{log}: training row '{name}' failed (exit {proc.returncode})")
    curve = [float(line.rsplit(":", 1)[1]) for line in log.read_text().splitlines()
             if "Metrics -- val_mean_dice" in line]
    return {"train_seconds": time.time() - t0, "steps": epochs * draws_per_epoch, "val_curve_verse014": curve,
            "checkpoint": str(ckpt_dir / "model.pt")}


def run(rows: str | list | tuple | None = None, out_dir: str = str(BUNDLE / "runs" / "data_ablation"), epochs: int = 12,
        draws_per_epoch: int = 50) -> None:
    sys.path.insert(0, str(HERE))
    import real_ct

    from scripts.data.phantom import GENERATOR_VERSION
    from scripts.data.real_cases import available_cases

    names = ([r for r in rows.split(",") if r] if isinstance(rows, str) else list(rows)) if rows else list(ROWS)
    unknown = sorted(set(names) - set(ROWS))
    if unknown:
        raise SystemExit(f"unknown ablation row(s) {unknown}; known: {list(ROWS)}")
    out = Path(out_dir)
    table = []
    for name in names:
        row_dir = out / name
        result_file = row_dir / "result.json"
        if result_file.is_file():
            table.append(json.loads(result_file.read_text()))
            print(f"{name}: done already ({result_file})")
            continue
        weights, version = ROWS[name]
        trained_file = row_dir / "trained.json"  # training done, benchmark not yet: only the benchmark reruns
        if version is not None and version != GENERATOR_VERSION and not trained_file.is_file():
            raise SystemExit(f"row '{name}' needs phantom generator v{version}; this code generates v{GENERATOR_VERSION}")
        row_dir.mkdir(parents=True, exist_ok=True)
        if trained_file.is_file():
            trained = json.loads(trained_file.read_text())
        else:
            print(f"{name}: training on {weights} ...", flush=True)
            trained = train_row(name, weights, row_dir, int(epochs), int(draws_per_epoch))
            trained_file.write_text(json.dumps(trained, indent=1))
        bench = real_ct.run(checkpoint=trained["checkpoint"], coarse_to_fine=False, out_dir=str(row_dir / "real_ct"),
                            overwrite=True,
                            spacing=RECIPE["spacing"], patch_size=RECIPE["patch_size"])
        seen = [c.name for c in available_cases() if c.trainable] if weights.get("real") else []
        synth = BUNDLE / "data" / "synth" / "synthesis_params.json"
        if weights.get("synthesis") and synth.is_file():
            trained.setdefault("synthesis_generator_version", json.loads(synth.read_text())["generator_version"])
        params = BUNDLE / "data" / "phantom" / "phantom_params.json"  # which phantom generator the row drew from
        if weights.get("phantom") and params.is_file():
            trained["phantom_generator_version"] = json.loads(params.read_text())["generator_version"]
            if version is not None and trained["phantom_generator_version"] != version:
                raise SystemExit(f"{params}: row '{name}' trained on phantom v{trained['phantom_generator_version']}")
        result = {"row": name, "mix_weights": weights, "recipe": RECIPE, "real_cases_trained_on": seen, **trained,
                  "benchmark": {r["case"]: {k: r.get(k) for k in ("dice", "hd95_mm", "recall", "fp_ml", "critical_share")}
                                for r in bench}}
        result_file.write_text(json.dumps(result, indent=1))
        table.append(result)
    cases = sorted({c for r in table for c in r["benchmark"]})
    print("| row | steps | training h (2 cores) | trained on real | " + " | ".join(f"{c} Dice" for c in cases) + " | critical share (lidc, ts) |")
    print("|---|---|---|---|" + "---|" * len(cases) + "---|")
    for r in table:
        b = r["benchmark"]
        crit = ", ".join(f"{b[c]['critical_share']:.3f}" for c in ("lidc_chest", "ts_example_ct")
                         if c in b and b[c].get("critical_share") is not None)
        print(f"| {r['row']} | {r['steps']} | {r['train_seconds'] / 3600:.2f} | {', '.join(r['real_cases_trained_on']) or 'none'} | "
              + " | ".join(f"{b[c]['dice']:.3f}" if c in b else "-" for c in cases) + f" | {crit} |")
    print("Dice of each row's best checkpoint by the verse014 validation curve (recorded per row in result.json).")
    (out / "ablation.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    import fire

    fire.Fire({"run": run})
