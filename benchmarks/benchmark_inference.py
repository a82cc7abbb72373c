"""Inference speed benchmark: wall time, peak RSS and Dice of the paper's configuration vs the coarse-to-fine path.

Each (volume, configuration) runs ``configs/inference.yaml`` (or nnU-Net's predictor) in a fresh subprocess, so peak
RSS is that process's own (``VmHWM``; ``ru_maxrss`` would start from the parent's RSS at fork); wall time is the run
(load, preprocess, infer, post-process, save), without the interpreter start and imports. Dice is the written mask
against the reference label on the input's grid.

Configurations:
  paper     ``--coarse_to_fine false``: same fine weights, whole volume at 1 mm, overlap 0.5, Gaussian.
  nnunet    nnU-Net v2's ``nnUNetPredictor`` running the same fine network and weights, TTA off (step 0.5, Gaussian),
            with nnU-Net's own I/O, preprocessing and export: ``benchmarks/nnunet_predictor.py`` in the nnU-Net peer
            venv (``bash tests/integration/make_nnunet_venv.sh``; ``--nnunet_python`` or ``SPINE_PEER_VENV`` to point
            elsewhere). Its mask has no largest-component step.
  fast      the default inference.yaml (coarse-to-fine, overlap 0.5 in the box).
  fast_o25  the fast path at overlap 0.25 (the overlap choice, measured).
  fast_aligned  the fast path with its box on the whole-volume window grid (``align_windows``).

Volumes: ``phantom512`` (512x512x400 voxels, 0.78x0.78x1.25 mm, generated once into data/bench/), ``verse014`` and
``ts_example_ct`` (../shared/data/real), and ``phantom512x600`` (512x512x600 voxels; fast path only by default: the
3 GB memory check).

A development tool, not part of the bundle (the release zip leaves it out):

    cd bundle && OMP_NUM_THREADS=2 python ../benchmarks/benchmark_inference.py run [--configs paper,nnunet,fast,fast_o25] \
        [--volumes phantom512,verse014,ts_example_ct,phantom512x600] [--results docs/inference_speed.json] [--merge true]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
if str(BUNDLE) not in sys.path:  # the bundle's ``scripts`` package, as in a bundle run
    sys.path.insert(0, str(BUNDLE))

from scripts.data.real_cases import REAL_DIR as REAL  # noqa: E402
from scripts.file_digest import file_md5  # noqa: E402

BENCH = BUNDLE / "data" / "bench"
NNUNET_SCRIPT = Path(__file__).resolve().parent / "nnunet_predictor.py"
PEER_PYTHON = Path(os.environ.get("SPINE_PEER_VENV", Path.home() / ".cache" / "spine_ct_seg" / "nnunet-venv")) / "bin" / \
    "python"

CONFIGS = {
    "paper": {"coarse_to_fine": False},
    "fast": {},
    "fast_o25": {"sw_overlap": 0.25},  # the fast path with a sparser fine window: the Dice cost of that choice
    "fast_aligned": {"inferer#align_windows": True},  # the box on the paper path's window grid: its Dice, its cost
    "nnunet": None,  # not inference.yaml: nnU-Net's predictor in its own venv (see _nnunet_command)
}


def _nnunet_fine_network() -> dict:
    """Row (c)'s part of the job: the fine network's checkpoint, geometry and intensity window as inference.yaml
    resolves them (so the paper and nnU-Net rows run the same network on the same grid)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.yaml"))
    parser["bundle_root"] = str(BUNDLE)
    intensity = parser.get_parsed_content("intensity")
    return {"bundle": str(BUNDLE), "ckpt": str(parser.get_parsed_content("ckpt_path")),
            "spacing": [float(v) for v in parser.get_parsed_content("spacing")],
            "patch_size": [int(v) for v in parser.get_parsed_content("patch_size")],
            "intensity": {k: float(intensity[k]) for k in ("a_min", "a_max", "b_min", "b_max")}}


def _nnunet_command(fine: dict, image: Path, mask: Path, threads: int, python: Path) -> list[str]:
    """The peer-venv command of row (c): its job file (``fine`` plus this volume) is written beside the mask."""
    mask.parent.mkdir(parents=True, exist_ok=True)
    job_file = mask.parent / "nnunet_job.json"
    job_file.write_text(json.dumps({**fine, "image": str(image), "output": str(mask), "threads": int(threads)}))
    return [str(python), str(NNUNET_SCRIPT), str(job_file)]


def _phantom(name: str, shape, seed: int) -> tuple[Path, Path, str]:
    image, label = BENCH / f"{name}.nii.gz", BENCH / f"{name}_label.nii.gz"
    if not (image.is_file() and label.is_file()):
        from scripts.data.phantom import write_case

        BENCH.mkdir(parents=True, exist_ok=True)
        print(f"generating {image} ...", flush=True)
        write_case(str(image), str(label), seed=seed, spacing=(0.78, 0.78, 1.25), shape=shape, orientation="LPS")
    return image, label, "verse"


def volume(name: str) -> tuple[Path, Path, str]:
    """(image, reference label, label map) of a benchmark volume."""
    if name == "phantom512":
        return _phantom("phantom_512x512x400", (512, 512, 400), 2024)
    if name == "phantom512x600":
        return _phantom("phantom_512x512x600", (512, 512, 600), 2025)
    if name == "verse014":
        d = REAL / "verse014"
        return d / "sub-verse014_ct.nii.gz", d / "sub-verse014_seg-vert_msk.nii.gz", "verse"
    if name == "ts_example_ct":
        d = REAL / "ts_example_ct"
        return d / "example_ct.nii.gz", d / "totalseg_spine_only.nii.gz", "totalseg"
    raise ValueError(f"unknown benchmark volume '{name}'")


def one(image: str, output_dir: str, config: str, threads: int = 2) -> None:
    """Child process: run inference.yaml once and print a JSON line with wall time, CPU time and peak RSS."""
    import torch
    from monai.bundle import run

    torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    run(run_id="run", config_file=str(BUNDLE / "configs" / "inference.yaml"), bundle_root=str(BUNDLE),
        image=str(image), output_dir=str(output_dir), overwrite=True,   # a --keep_dir rerun replaces its own masks
        logging_file=str(BUNDLE / "configs" / "logging.conf"), **CONFIGS[config])
    print(bench_line(time.perf_counter() - t0))


def bench_line(wall_s: float) -> str:
    """The line a benchmark child prints last: its wall time, CPU time and peak RSS, as the parent reads them.
    Peak RSS is ``VmHWM``, this process's own (``ru_maxrss`` starts from the parent's RSS at fork)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")]
    peak = hwm[0] / 1024 if hwm else ru.ru_maxrss / 1024
    return "BENCH " + json.dumps({"wall_s": wall_s, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mib": peak})


def dice(mask_path: Path, label_path: Path, label_map: str) -> float:
    import nibabel as nib
    import numpy as np

    from scripts.data.label_maps import remap

    pred = np.asarray(nib.load(str(mask_path)).dataobj) > 0
    ref = np.asarray(remap(np.asarray(nib.load(str(label_path)).dataobj), label_map, binary=True)) > 0
    if pred.shape != ref.shape:
        raise ValueError(f"{mask_path}: shape {pred.shape} differs from the reference {label_path} {ref.shape}")
    inter = np.count_nonzero(pred & ref)
    total = np.count_nonzero(pred) + np.count_nonzero(ref)
    return 2.0 * inter / total if total else 1.0


def _table(rows: list[dict]) -> str:
    lines = ["| volume | config | wall s | CPU s | peak RSS MiB | Dice | Dice - paper | speed-up vs paper (wall, CPU) |",
             "|---|---|---|---|---|---|---|---|"]
    paper = {r["volume"]: r for r in rows if r["config"] == "paper"}
    for r in rows:
        p = paper.get(r["volume"]) if r["config"] != "paper" else None
        up = f"{p['wall_s'] / r['wall_s']:.1f}x, {p['cpu_s'] / r['cpu_s']:.1f}x" if p else ""
        dd = f"{r['dice'] - p['dice']:+.4f}" if p else ""
        lines.append(f"| {r['volume']} | {r['config']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                     f"{r['peak_rss_mib']:.0f} | {r['dice']:.4f} | {dd} | {up} |")
    return "\n".join(lines)


def run(
    configs: str | list = "paper,nnunet,fast,fast_o25",
    volumes: str | list = "verse014,ts_example_ct,phantom512",
    memory_volume: str = "phantom512x600",
    threads: int = 2,
    results: str = "",
    keep_dir: str = "",
    nnunet_python: str = "",
    merge: bool = False,
) -> None:
    """Run every configuration on every volume (configuration-major: all ``paper`` runs first), plus the fast path on
    ``memory_volume`` (the 3 GB check; '' to skip); print the Markdown table. With ``merge``, the rows of ``results``
    that this run does not repeat (other configurations, other volumes) are kept; each row names the fine weights it
    ran with (``weights_md5``)."""
    configs = configs.split(",") if isinstance(configs, str) else list(configs)
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configuration(s) {unknown}: choose from {', '.join(CONFIGS)}")
    peer = Path(nnunet_python) if nnunet_python else PEER_PYTHON
    if "nnunet" in configs and not (peer.is_file() and NNUNET_SCRIPT.is_file()):
        raise FileNotFoundError(f"{peer}: no nnU-Net peer python for config 'nnunet' (build it with "
                                f"'bash tests/integration/make_nnunet_venv.sh', or leave nnunet out of --configs)")
    fine = _nnunet_fine_network() if "nnunet" in configs else {}
    volumes = [v for v in (volumes.split(",") if isinstance(volumes, str) else list(volumes)) if v]
    jobs = [(c, v) for c in configs for v in volumes]
    if memory_volume:
        jobs.append(("fast", memory_volume))
    new = {(c, v) for c, v in jobs}
    kept = [r for r in json.loads(Path(results).read_text())
            if (r["config"], r["volume"]) not in new] if merge and results and Path(results).is_file() else []
    model = BUNDLE / "models" / "model.pt"
    weights = file_md5(model) if model.is_file() else ""
    rows = []
    with tempfile.TemporaryDirectory(prefix="spine_bench_") as tmp:
        work = Path(keep_dir) if keep_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for config, name in jobs:
            image, label, label_map = volume(name)
            if not image.is_file():
                raise FileNotFoundError(f"{image}: benchmark volume not found (set SPINE_SHARED_DIR for the real CTs)")
            out = work / f"{name}_{config}"
            mask = out / (image.name.replace(".nii.gz", "") + "_seg.nii.gz")
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
            cmd = (_nnunet_command(fine, image, mask, threads, peer) if config == "nnunet" else
                   [sys.executable, str(Path(__file__).resolve()), "one", str(image), str(out), config,
                    f"--threads={threads}"])
            proc = subprocess.run(cmd, cwd=BUNDLE, env=env, capture_output=True, text=True)
            line = [s for s in proc.stdout.splitlines() if s.startswith("BENCH ")]
            if proc.returncode != 0 or not line:
                (work / f"{name}_{config}.stderr.txt").write_text(proc.stderr)
                raise RuntimeError(f"{name}/{config}: inference failed ({proc.returncode}); its log: "
                                   f"{work}/{name}_{config}.stderr.txt")
            row = {"volume": name, "config": config, **json.loads(line[-1][6:])}
            row["dice"] = dice(mask, label, label_map)
            warn = [s for s in proc.stderr.splitlines() if "coarse-to-fine" in s and "WARNING" in s]
            row["warnings"] = warn
            row["weights_md5"] = weights  # nnunet runs the same checkpoint (_nnunet_fine_network)
            rows.append(row)
            print(f"{name:16s} {config:8s} wall {row['wall_s']:8.1f} s  cpu {row['cpu_s']:8.1f} s  "
                  f"peak RSS {row['peak_rss_mib']:7.0f} MiB  Dice {row['dice']:.4f} {' '.join(warn)}", flush=True)
            if results:
                Path(results).write_text(json.dumps(kept + rows, indent=1) + "\n")
    table = _table(kept + rows)
    print(table)
    if results:
        Path(results).with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    import fire

    fire.Fire({"run": run, "one": one})
