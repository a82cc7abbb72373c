"""Training throughput on this machine: optimiser steps/s and voxels/s per network, patch and memory format, and
whether the data pipeline keeps up with the network.

For each network and candidate recipe (spacing, patch) it times full training steps (forward, DiceCE loss, backward,
Adam step) on a batch of ``num_samples`` patches in three forms, side by side: channels-first, channels-last
(``scripts.networks.to_channels_last``, what train.yaml uses) and ``torch.compile`` of the channels-last network.
Then it times the bundle's own training pipeline (train.yaml's cached deterministic transforms, patch sampling and
nnU-Net augmentation) drawing the same batches from the data mix, and reports the share of a step the data would
cost if it ran in the training process (``num_workers: 0``).

    cd bundle && OMP_NUM_THREADS=2 python ../benchmarks/train_throughput.py run \\
        [--networks spine_context_resunet,resunet] [--recipes paper_1mm,iso_1p5mm,iso_2mm] [--steps 5] \\
        [--modes channels_first,channels_last,compile] [--data true] [--out docs/train_throughput.json] [--merge true]
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
if str(BUNDLE) not in sys.path:
    sys.path.insert(0, str(BUNDLE))

#: candidate CPU recipes: (spacing mm, patch voxels); each patch covers about the paper's 128x128x64 mm or more
RECIPES = {
    "paper_1mm": ([1.0, 1.0, 1.0], [128, 128, 64]),
    "iso_1p5mm": ([1.5, 1.5, 1.5], [96, 96, 96]),
    "iso_2mm": ([2.0, 2.0, 2.0], [64, 64, 64]),
}
MODES = ("channels_first", "channels_last", "compile")


def _as_list(value, default) -> list[str]:
    if value is None:
        return list(default)
    return [v for v in value.split(",") if v] if isinstance(value, str) else list(value)


def time_steps(network: str, patch: list[int], mode: str, steps: int, num_samples: int) -> dict:
    """Seconds per training step of ``network`` on ``num_samples`` random patches (after one warm-up step)."""
    import torch
    from monai.losses import DiceCELoss

    from scripts.networks import build_network

    torch.manual_seed(0)
    net = build_network(network, out_channels=1, patch_size=patch, channels_last=mode != "channels_first")
    if mode == "compile":
        net = torch.compile(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = DiceCELoss(sigmoid=True)
    x = torch.randn(num_samples, 1, *patch)
    y = (torch.rand(num_samples, 1, *patch) > 0.9).float()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    step()                                   # warm-up (and compilation)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - t0) / steps
    voxels = num_samples * patch[0] * patch[1] * patch[2]
    return {"s_per_step": round(per_step, 3), "steps_per_s": round(1.0 / per_step, 3),
            "mvoxels_per_s": round(voxels / per_step / 1e6, 3), "first_step_s": round(warm, 2)}


def time_data(recipe: str, draws: int, num_samples: int) -> dict:
    """Seconds per batch drawn through train.yaml's pipeline on the data mix (4 cached cases per source)."""
    from monai.bundle import ConfigParser

    spacing, patch = RECIPES[recipe]
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / f) for f in ("train.yaml", "data_mix.yaml", "cpu_recipe.yaml")])
    parser.update({"bundle_root": str(BUNDLE), "spacing": spacing, "patch_size": patch, "num_samples": num_samples,
                   "mix_weights": {"phantom": 0.5, "synthesis": 0.5}, "draws_per_epoch": draws,
                   "train#dataset#data#items": "$[d for s in ('phantom', 'synthesis') for d in "
                                               "[x for x in @data['training'] if x['source'] == s][:4]]",
                   "train#dataset#progress": False})
    t0 = time.perf_counter()
    loader = parser.get_parsed_content("train#dataloader")
    cache_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = 0
    for _ in loader:
        n += 1
    per_batch = (time.perf_counter() - t0) / max(n, 1)
    return {"cache_s_per_case": round(cache_s / len(loader.dataset), 2), "s_per_batch": round(per_batch, 3),
            "batches": n}


def run(networks=None, recipes=None, modes=None, steps: int = 5, num_samples: int = 2, data: bool = True,
        draws: int = 10, out: str = str(BUNDLE / "docs" / "train_throughput.json"), merge: bool = False) -> list[dict]:
    """Time every (recipe, network, mode) and write the record to ``out``. With ``merge``, the rows of ``out`` that
    this run does not repeat are kept (each row says when it was measured, and the load on the cores then)."""
    import torch

    from scripts.flags import as_bool

    nets = _as_list(networks, ["spine_context_resunet"])
    chosen = _as_list(recipes, RECIPES)
    forms = _as_list(modes, MODES)
    unknown = sorted(set(chosen) - set(RECIPES)) + sorted(set(forms) - set(MODES))
    if unknown:
        raise SystemExit(f"unknown recipe or mode {unknown}; recipes {list(RECIPES)}, modes {list(MODES)}")
    rows: list[dict] = []
    load_before = os.getloadavg()
    kept = []
    if as_bool(merge, "--merge") and Path(out).is_file():
        again = {(n, r, m) for r in chosen for n in nets for m in forms}
        kept = [r for r in json.loads(Path(out).read_text())["rows"]
                if (r["network"], r["recipe"], r["mode"]) not in again]

    def write() -> None:   # after every row: a run stopped part-way keeps what it measured
        # the 1-minute load average before and now: other processes on the cores inflate every figure alike
        record = {"machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                              "python": platform.python_version(), "cpu_count": os.cpu_count(),
                              "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
                  "num_samples": int(num_samples), "steps": int(steps), "rows": kept + rows}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=1) + "\n")

    for recipe in chosen:
        spacing, patch = RECIPES[recipe]
        data_row = time_data(recipe, int(draws), int(num_samples)) if as_bool(data, "--data") else None
        for net in nets:
            for mode in forms:
                try:
                    timing = time_steps(net, patch, mode, int(steps), int(num_samples))
                except Exception as e:   # torch.compile needs a C++ toolchain; report, do not stop the table
                    timing = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"}
                row = {"network": net, "recipe": recipe, "spacing": spacing, "patch": patch, "mode": mode, **timing,
                       "measured": time.strftime("%Y-%m-%dT%H:%M"), "loadavg_1min_before": round(load_before[0], 2)}
                if data_row and "s_per_step" in timing:
                    row["data_s_per_batch"] = data_row["s_per_batch"]
                    row["data_share_of_step"] = round(data_row["s_per_batch"] / (data_row["s_per_batch"]
                                                                                + timing["s_per_step"]), 3)
                rows.append(row)
                write()
                print(_fmt(row), flush=True)
    print(f"written {out}")
    return rows


def _fmt(row: dict) -> str:
    if "error" in row:
        return f"{row['network']:<22} {row['recipe']:<10} {row['mode']:<15} {row['error']}"
    data = f"  data {row['data_s_per_batch']:.2f} s/batch ({100 * row['data_share_of_step']:.0f} % of a step)" \
        if "data_s_per_batch" in row else ""
    return (f"{row['network']:<22} {row['recipe']:<10} {row['mode']:<15} {row['s_per_step']:6.2f} s/step "
            f"{row['steps_per_s']:6.3f} steps/s {row['mvoxels_per_s']:6.2f} Mvox/s{data}")


if __name__ == "__main__":
    import fire

    fire.Fire({"run": run})
