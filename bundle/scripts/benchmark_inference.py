"""Inference speed benchmark: wall time, peak RSS and Dice of the paper's configuration vs the coarse-to-fine path.

Each (volume, configuration) runs ``configs/inference.yaml`` in a fresh subprocess (so peak RSS is that run's own,
``resource.getrusage(RUSAGE_SELF).ru_maxrss``); wall time is the bundle run (load, preprocess, infer, post-process,
save), without the interpreter start. Dice is the written mask against the reference label on the input's grid.

Configurations:
  paper  ``--coarse_to_fine false``: same fine weights, whole volume at 1 mm, overlap 0.5, Gaussian.
  fast   the default inference.yaml (coarse-to-fine).

Volumes: ``phantom512`` (512x512x400 voxels, 0.78x0.78x1.25 mm, generated once into data/bench/), ``verse014`` and
``ts_example_ct`` (../shared/data/real), and ``phantom512x600`` (512x512x600 voxels; fast path only by default: the
3 GB memory check).

    cd bundle && OMP_NUM_THREADS=2 python -m scripts.benchmark_inference run [--configs paper,fast] \
        [--volumes phantom512,verse014,ts_example_ct,phantom512x600] [--results docs/inference_speed.json]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("SPINE_SHARED_DIR", BUNDLE.parents[1] / "shared")) / "data" / "real"
BENCH = BUNDLE / "data" / "bench"

CONFIGS = {
    "paper": {"coarse_to_fine": False},
    "fast": {},
}


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
    import resource

    import torch
    from monai.bundle import run

    torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    run(run_id="run", config_file=str(BUNDLE / "configs" / "inference.yaml"), bundle_root=str(BUNDLE),
        image=str(image), output_dir=str(output_dir), logging_file=str(BUNDLE / "configs" / "logging.conf"),
        **CONFIGS[config])
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print("BENCH " + json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mib": ru.ru_maxrss / 1024}))


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
    lines = ["| volume | config | wall s | CPU s | peak RSS MiB | Dice | speed-up vs paper |", "|---|---|---|---|---|---|---|"]
    paper = {r["volume"]: r["wall_s"] for r in rows if r["config"] == "paper"}
    for r in rows:
        up = f"{paper[r['volume']] / r['wall_s']:.1f}x" if r["volume"] in paper and r["config"] != "paper" else ""
        lines.append(f"| {r['volume']} | {r['config']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                     f"{r['peak_rss_mib']:.0f} | {r['dice']:.4f} | {up} |")
    return "\n".join(lines)


def run(
    configs: str | list = "paper,fast",
    volumes: str | list = "verse014,ts_example_ct,phantom512",
    memory_volume: str = "phantom512x600",
    threads: int = 2,
    results: str = "",
    keep_dir: str = "",
) -> None:
    """Run every configuration on every volume (configuration-major: all ``paper`` runs first), plus the fast path on
    ``memory_volume`` (the 3 GB check; '' to skip); print the Markdown table."""
    configs = configs.split(",") if isinstance(configs, str) else list(configs)
    volumes = [v for v in (volumes.split(",") if isinstance(volumes, str) else list(volumes)) if v]
    jobs = [(c, v) for c in configs for v in volumes]
    if memory_volume:
        jobs.append(("fast", memory_volume))
    rows = []
    with tempfile.TemporaryDirectory(prefix="spine_bench_") as tmp:
        work = Path(keep_dir) if keep_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for config, name in jobs:
            image, label, label_map = volume(name)
            if not image.is_file():
                raise FileNotFoundError(f"{image}: benchmark volume not found (set SPINE_SHARED_DIR for the real CTs)")
            out = work / f"{name}_{config}"
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
            proc = subprocess.run(
                [sys.executable, "-m", "scripts.benchmark_inference", "one", str(image), str(out), config,
                 f"--threads={threads}"], cwd=BUNDLE, env=env, capture_output=True, text=True)
            line = [s for s in proc.stdout.splitlines() if s.startswith("BENCH ")]
            if proc.returncode != 0 or not line:
                (work / f"{name}_{config}.stderr.txt").write_text(proc.stderr)
                raise RuntimeError(f"{name}/{config}: inference failed ({proc.returncode}); its log: "
                                   f"{work}/{name}_{config}.stderr.txt")
            row = {"volume": name, "config": config, **json.loads(line[-1][6:])}
            mask = out / (image.name.replace(".nii.gz", "") + "_seg.nii.gz")
            row["dice"] = dice(mask, label, label_map)
            warn = [s for s in proc.stderr.splitlines() if "coarse-to-fine" in s and "WARNING" in s]
            row["warnings"] = warn
            rows.append(row)
            print(f"{name:16s} {config:6s} wall {row['wall_s']:8.1f} s  cpu {row['cpu_s']:8.1f} s  "
                  f"peak RSS {row['peak_rss_mib']:7.0f} MiB  Dice {row['dice']:.4f} {' '.join(warn)}", flush=True)
            if results:
                Path(results).write_text(json.dumps(rows, indent=1) + "\n")
    table = _table(rows)
    print(table)


def overlap(
    volumes: str | list = "verse014,ts_example_ct,phantom512",
    overlaps: str | list = "0.5,0.25,0.1",
    threads: int = 2,
    backend: str = "onnxruntime",
) -> None:
    """The fast path's fine-window overlap: time and Dice (vs the reference, and vs overlap 0.5) per choice.

    In one process per volume: preprocess as inference.yaml's fast path (RAS, HU window), one coarse pass, then the
    fine stage in the coarse box at each overlap; masks are thresholded and reduced to the largest component on the
    RAS grid (the label is reoriented the same way)."""
    import numpy as np
    import torch
    from monai.transforms import Compose, KeepLargestConnectedComponent, LoadImage, Orientation, ScaleIntensityRange

    from scripts.data.label_maps import remap
    from scripts.inference.coarse_to_fine import CoarseToFineInferer, native_spacing
    from scripts.networks import build_network

    torch.set_num_threads(int(threads))
    overlaps = [float(o) for o in (overlaps.split(",") if isinstance(overlaps, str) else overlaps)]
    volumes = volumes.split(",") if isinstance(volumes, str) else list(volumes)
    ras = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))
    load = Compose([LoadImage(image_only=True, ensure_channel_first=True), ras])
    window = ScaleIntensityRange(-1000.0, 2000.0, -1.0, 1.0, clip=True)
    net = build_network("spine_context_resunet")
    net.load_state_dict(torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True))
    net.eval()
    lcc = KeepLargestConnectedComponent(independent=True)
    print("| volume | overlap | fine windows | fine s | Dice vs reference | Dice vs overlap 0.5 |\n|---|---|---|---|---|---|")
    for name in volumes:
        image, label, label_map = volume(name)
        x = window(load(str(image)))[None]
        ref = np.asarray(remap(np.asarray(load(str(label)))[0].astype(np.int32), label_map, binary=True)) > 0
        sp = native_spacing(x)
        inferer = CoarseToFineInferer(roi_size=(128, 128, 64), overlap=0.5, backend=backend,
                                      coarse_network=build_network(base_filters=4),
                                      coarse_ckpt=str(BUNDLE / "models" / "coarse.pt"))
        with torch.inference_mode():
            box = inferer.find_box(x.as_tensor(), sp)
        inferer.find_box = lambda *a, _box=box: _box  # the same box for every overlap
        masks = {}
        for ov in overlaps:
            inferer.overlap = ov
            calls = []
            fine = inferer._fine_network(net, torch.device("cpu"))
            counted = lambda t, _f=fine: (calls.append(t.shape[0]), _f(t))[1]  # noqa: E731
            inferer._fine_network = lambda *a, _c=counted: _c
            t0 = time.perf_counter()
            with torch.no_grad():
                out = inferer(x, net)
            dt = time.perf_counter() - t0
            del inferer._fine_network
            m = np.asarray(lcc((out.as_tensor() > 0).to(torch.uint8)))[0] > 0
            masks[ov] = m
            d_ref = 2 * np.count_nonzero(m & ref) / max(1, np.count_nonzero(m) + np.count_nonzero(ref))
            m0 = masks[overlaps[0]]
            d_05 = 2 * np.count_nonzero(m & m0) / max(1, np.count_nonzero(m) + np.count_nonzero(m0))
            print(f"| {name} | {ov} | {sum(calls)} | {dt:.1f} | {d_ref:.4f} | {d_05:.4f} |", flush=True)


if __name__ == "__main__":
    import fire

    fire.Fire({"run": run, "one": one, "overlap": overlap})
