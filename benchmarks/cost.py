"""Computational cost of the bundle's networks: parameters, MACs, CPU (and GPU) latency, throughput, peak memory
and an energy / CO2 estimate per CT.

A development tool, not part of the bundle (the release zip leaves it out). Usage (from the bundle root)::

    python ../benchmarks/cost.py run --patch=128,128,64 --threads=2 --warmup=1 --repeats=3 --out=docs/cost_cpu

writes ``docs/cost_cpu.md``, ``docs/cost_cpu.csv`` and ``docs/cost_cpu.json``. ``--networks=unet3d,uc_3d_unet``
selects networks (default: every network of :data:`scripts.networks.NETWORKS`, built with one input and one output
channel, the binary spine task).

Two MAC counts per patch (columns ``gmacs_thop`` and ``gmacs_matmul``, in 1e9 multiply-accumulates), batch 1:

* thop-style: the convention of ``thop.profile`` (thop 0.1.1, the counter most papers use, e.g. uC 3DU-Net's
  ``cost.py``), reproduced by forward hooks in :func:`thop_style_macs` without depending on thop. Convolutions and
  transposed convolutions count ``output elements x (input channels / groups) x kernel volume`` (no bias), Linear
  ``in_features x output elements``, BatchNorm/InstanceNorm/LayerNorm ``2 x input elements`` (x2 when affine),
  AvgPool ``output elements``, Softmax modules ``rows x (3 x features - 1)``; GroupNorm, GELU, (Leaky)ReLU, max
  pooling, dropout and every functional op (matmul, softmax, interpolation, additions) count zero.
* conv+matmul: convolutions and matrix products only, from :class:`torch.utils.flop_counter.FlopCounterMode`
  (MACs = FLOPs / 2); attention matmuls are included, normalisation and activations are not.

Both are computed on the ``meta`` device (shapes only, no arithmetic), so they are instant even at large patches.

Latency is the median (and min) of ``repeats`` timed forward passes (``torch.inference_mode``, eval mode, batch 1)
after ``warmup`` untimed ones, each network in its own subprocess with ``torch.set_num_threads(threads)``. Peak
memory is that subprocess's peak resident set size during inference (Linux: ``VmHWM`` after resetting it through
``/proc/self/clear_refs``; elsewhere the lifetime ``ru_maxrss``) minus the resident size just before the first
forward (model and input already allocated), i.e. the inference working memory. On a CUDA machine the same model is
also timed on the GPU (``torch.cuda.synchronize`` around each pass; peak ``max_memory_allocated``).

Energy per CT = latency x number of sliding-window patches for a CT of ``ct_size_mm`` at ``spacing_mm`` (MONAI's
``sliding_window_inference`` grid at ``overlap``) x ``cpu_power_w`` (or ``gpu_power_w``); CO2 = energy x
``grid_gco2_per_kwh``. The power figures are assumptions you set, not measurements.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
if str(BUNDLE) not in sys.path:  # the bundle's ``scripts`` package, as in a bundle run
    sys.path.insert(0, str(BUNDLE))

DEFAULT_CPU_POWER_W = 65.0  # a typical desktop/server CPU package power under load; set your own
DEFAULT_GPU_POWER_W = 350.0  # e.g. H100 PCIe board power; set your own
DEFAULT_GRID_GCO2_PER_KWH = 475.0  # world-average grid carbon intensity often used for ML estimates; set your own


# ---------------------------------------------------------------------------------------------------------------
# MAC counting
# ---------------------------------------------------------------------------------------------------------------


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def _conv(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    # thop: prod(output shape) * (input channels // groups) * prod(kernel spatial); transposed convs alike; no bias
    return float(_numel(y.shape) * (x.shape[1] // m.groups) * _numel(m.weight.shape[2:]))


def _norm(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    ops = 2.0 * x.numel()
    if getattr(m, "affine", False) or getattr(m, "elementwise_affine", False):
        ops *= 2
    return ops


def _zero(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return 0.0


def _prelu(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return 0.0 if m.training else float(x.numel())


def _softmax(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    features = x.shape[m.dim]
    return float((x.numel() // features) * (3 * features - 1))


def _avgpool(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(y.numel())


def _adaptive_avgpool(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    kernel = math.prod(a / b for a, b in zip(x.shape[2:], y.shape[2:]))
    return float(int((kernel + 1) * y.numel()))


def _upsample(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    factor = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259}.get(m.mode)
    return 0.0 if factor is None else float(factor * y.numel())  # thop counts trilinear as zero


def _linear(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(m.in_features * y.numel())


THOP_RULES = {
    **{t: _conv for t in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)},
    **{
        t: _norm
        for t in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm,
                  nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
    },
    **{t: _zero for t in (nn.ZeroPad2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
                          nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Dropout,
                          nn.Sequential, nn.PixelShuffle)},
    **{t: _avgpool for t in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)},
    **{t: _adaptive_avgpool for t in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)},
    **{t: _upsample for t in (nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d)},
    nn.PReLU: _prelu,
    nn.Softmax: _softmax,
    nn.Linear: _linear,
}
"""thop 0.1.1's rules, keyed by exact module type as thop does (a subclass of a listed type counts zero)."""


def thop_style_macs(model: nn.Module, input_shape: Sequence[int], device: str | torch.device = "meta") -> float:
    """Multiply-accumulates of one forward pass counted with thop's rules (see module docstring).

    The model is moved to ``device`` (default ``meta``: shapes only, no compute) and evaluated in eval mode; pass a
    throw-away model, since moving to ``meta`` discards its weights.
    """
    model = model.to(device).eval()
    total = [0.0]

    def hook(m, args, out):
        if args:  # thop's hooks read the first positional input
            total[0] += THOP_RULES[type(m)](m, args[0], out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in THOP_RULES]
    try:
        with torch.no_grad():
            model(torch.empty(*input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def matmul_macs(model: nn.Module, input_shape: Sequence[int], device: str | torch.device = "meta") -> float:
    """Multiply-accumulates of convolutions and matrix products (FlopCounterMode FLOPs / 2); see module docstring."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.to(device).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(*input_shape, device=device))
    return counter.get_total_flops() / 2.0


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------------------
# Sliding-window patch count and energy
# ---------------------------------------------------------------------------------------------------------------


def sliding_window_patches(image_size: Sequence[int], patch: Sequence[int], overlap: float = 0.5) -> int:
    """Number of windows MONAI's ``sliding_window_inference`` evaluates for ``image_size`` (padded up to ``patch``
    where smaller) with ``roi_size=patch`` and ``overlap``."""
    from monai.data.utils import dense_patch_slices

    image = [max(int(i), int(p)) for i, p in zip(image_size, patch)]
    interval = [p if p == i else max(int(p * (1 - overlap)), 1) for i, p in zip(image, patch)]
    return len(dense_patch_slices(image, [int(p) for p in patch], interval))


def energy_per_ct(latency_s: float, n_patches: int, power_w: float, grid_gco2_per_kwh: float) -> dict[str, float]:
    """Time, energy and CO2 to segment one CT: ``latency x patches``, ``x power``, ``x grid intensity``."""
    seconds = float(latency_s) * int(n_patches)
    wh = seconds * float(power_w) / 3600.0
    return {"s_per_ct": seconds, "wh_per_ct": wh, "gco2_per_ct": wh / 1000.0 * float(grid_gco2_per_kwh)}


# ---------------------------------------------------------------------------------------------------------------
# Timing (runs inside a per-network subprocess)
# ---------------------------------------------------------------------------------------------------------------


def _build(name: str, patch: Sequence[int], in_channels: int = 1, out_channels: int = 1) -> nn.Module:
    from scripts.networks import build_network

    return build_network(name, in_channels=in_channels, out_channels=out_channels, patch_size=patch)


def _time_runs(fn, warmup: int, repeats: int, sync=None) -> list[float]:
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return times


def _maxrss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return kib / (1024.0 * 1024.0) if sys.platform == "darwin" else kib / 1024.0


def _proc_status_mib(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _reset_peak_rss() -> tuple[float, bool]:
    """Reset the process's peak RSS (Linux: ``echo 5 > /proc/self/clear_refs``) and return (current RSS MiB, whether
    the reset worked). Without it the peak is the process-lifetime ``ru_maxrss``, which import-time spikes inflate."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        now = _proc_status_mib("VmRSS")
        if now is not None and _proc_status_mib("VmHWM") is not None:
            return now, True
    except OSError:
        pass
    return _maxrss_mib(), False


def _peak_rss_mib(reset_worked: bool) -> float:
    return _proc_status_mib("VmHWM") if reset_worked else _maxrss_mib()


def measure_network(
    name: str, patch: Sequence[int], threads: int = 2, warmup: int = 1, repeats: int = 3, gpu: bool = True
) -> dict:
    """Latency and memory of one network, measured in THIS process (call it in a fresh one: ru_maxrss is a
    process-lifetime peak). Returns seconds and MiB."""
    torch.set_num_threads(int(threads))
    torch.manual_seed(0)
    patch = tuple(int(p) for p in patch)
    model = _build(name, patch).eval()
    x = torch.randn(1, 1, *patch)
    rss_before, reset_worked = _reset_peak_rss()
    with torch.inference_mode():
        times = _time_runs(lambda: model(x), warmup, repeats)
    peak = _peak_rss_mib(reset_worked)
    result = {
        "cpu_threads": torch.get_num_threads(),
        "cpu_latency_s": statistics.median(times),
        "cpu_latency_min_s": min(times),
        "cpu_times_s": times,
        "cpu_peak_rss_mib": peak,
        "cpu_peak_rss_delta_mib": peak - rss_before,
        "rss_peak_method": "VmHWM after clear_refs" if reset_worked else "ru_maxrss",
    }
    if gpu and torch.cuda.is_available():
        dev = torch.device("cuda")
        model, xg = model.to(dev), x.to(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        with torch.inference_mode():
            gtimes = _time_runs(lambda: model(xg), max(warmup, 3), max(repeats, 10), sync=torch.cuda.synchronize)
        result.update(
            gpu_name=torch.cuda.get_device_name(dev),
            gpu_latency_s=statistics.median(gtimes),
            gpu_times_s=gtimes,
            gpu_peak_mem_mib=(torch.cuda.max_memory_allocated(dev) - base) / 2**20,
        )
    return result


def _measure_in_subprocess(name: str, patch: Sequence[int], threads: int, warmup: int, repeats: int, gpu: bool) -> dict:
    args = json.dumps([name, list(patch), threads, warmup, repeats, gpu])
    code = (
        "import json, sys; sys.path[:0] = sys.argv[1:3]; from benchmarks.cost import measure_network; "
        "print('RESULT' + json.dumps(measure_network(*json.loads(sys.argv[3]))))"
    )
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", code, str(REPO), str(BUNDLE), args], capture_output=True, text=True,
                          env=env)
    if proc.returncode:
        raise RuntimeError(f"measuring {name} failed:\n{proc.stderr[-2000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


# ---------------------------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------------------------


def cost_row(
    name: str,
    patch: Sequence[int] = (128, 128, 64),
    threads: int = 2,
    warmup: int = 1,
    repeats: int = 3,
    ct_size_mm: Sequence[float] = (300, 300, 400),
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
    overlap: float = 0.5,
    cpu_power_w: float = DEFAULT_CPU_POWER_W,
    gpu_power_w: float = DEFAULT_GPU_POWER_W,
    grid_gco2_per_kwh: float = DEFAULT_GRID_GCO2_PER_KWH,
    gpu: bool = True,
    timing: bool = True,
) -> dict:
    """One row of the cost table for network ``name`` at ``patch`` (binary task: 1 input, 1 output channel).
    ``timing=False`` gives the static columns only (parameters, MACs, patches per CT)."""
    patch = tuple(int(p) for p in patch)
    shape = (1, 1, *patch)
    voxels = math.prod(patch)
    ct_vox = [int(round(float(s) / float(sp))) for s, sp in zip(ct_size_mm, spacing_mm)]
    n_patches = sliding_window_patches(ct_vox, patch, overlap)
    row = {
        "network": name,
        "patch": "x".join(map(str, patch)),
        "params": count_parameters(_build(name, patch)),
        "gmacs_thop": thop_style_macs(_build(name, patch), shape) / 1e9,
        "gmacs_matmul": matmul_macs(_build(name, patch), shape) / 1e9,
        "ct_voxels": "x".join(map(str, ct_vox)),
        "patches_per_ct": n_patches,
    }
    if not timing:
        return row
    m = _measure_in_subprocess(name, patch, threads, warmup, repeats, gpu)
    lat = m["cpu_latency_s"]
    cpu_ct = energy_per_ct(lat, n_patches, cpu_power_w, grid_gco2_per_kwh)
    row.update(
        cpu_threads=m["cpu_threads"],
        cpu_latency_s=lat,
        cpu_latency_min_s=m["cpu_latency_min_s"],
        cpu_patches_per_s=1.0 / lat,
        cpu_mvox_per_s=voxels / lat / 1e6,
        cpu_peak_rss_mib=m["cpu_peak_rss_mib"],
        cpu_peak_rss_delta_mib=m["cpu_peak_rss_delta_mib"],
        rss_peak_method=m["rss_peak_method"],
        cpu_s_per_ct=cpu_ct["s_per_ct"],
        cpu_wh_per_ct=cpu_ct["wh_per_ct"],
        cpu_gco2_per_ct=cpu_ct["gco2_per_ct"],
        cpu_times_s=m["cpu_times_s"],
    )
    if "gpu_latency_s" in m:
        g = m["gpu_latency_s"]
        gpu_ct = energy_per_ct(g, n_patches, gpu_power_w, grid_gco2_per_kwh)
        row.update(
            gpu_name=m["gpu_name"],
            gpu_latency_s=g,
            gpu_patches_per_s=1.0 / g,
            gpu_mvox_per_s=voxels / g / 1e6,
            gpu_peak_mem_mib=m["gpu_peak_mem_mib"],
            gpu_s_per_ct=gpu_ct["s_per_ct"],
            gpu_wh_per_ct=gpu_ct["wh_per_ct"],
            gpu_gco2_per_ct=gpu_ct["gco2_per_ct"],
        )
    return row


COLUMNS = [  # (key, markdown header, format)
    ("network", "network", "{}"),
    ("patch", "patch", "{}"),
    ("params", "params", "{:,}"),
    ("gmacs_thop", "GMACs (thop-style)", "{:.2f}"),
    ("gmacs_matmul", "GMACs (conv+matmul)", "{:.2f}"),
    ("cpu_threads", "CPU threads", "{}"),
    ("cpu_latency_s", "CPU s/patch (median)", "{:.3f}"),
    ("cpu_latency_min_s", "CPU s/patch (min)", "{:.3f}"),
    ("cpu_patches_per_s", "CPU patches/s", "{:.3f}"),
    ("cpu_mvox_per_s", "CPU Mvox/s", "{:.3f}"),
    ("cpu_peak_rss_delta_mib", "CPU peak RSS delta (MiB)", "{:.0f}"),
    ("patches_per_ct", "patches/CT", "{}"),
    ("cpu_s_per_ct", "CPU s/CT", "{:.1f}"),
    ("cpu_wh_per_ct", "CPU Wh/CT", "{:.3f}"),
    ("cpu_gco2_per_ct", "CPU gCO2/CT", "{:.3f}"),
    ("gpu_latency_s", "GPU s/patch (median)", "{:.4f}"),
    ("gpu_patches_per_s", "GPU patches/s", "{:.1f}"),
    ("gpu_mvox_per_s", "GPU Mvox/s", "{:.1f}"),
    ("gpu_peak_mem_mib", "GPU peak mem (MiB)", "{:.0f}"),
    ("gpu_s_per_ct", "GPU s/CT", "{:.2f}"),
    ("gpu_wh_per_ct", "GPU Wh/CT", "{:.4f}"),
    ("gpu_gco2_per_ct", "GPU gCO2/CT", "{:.4f}"),
]


def markdown_table(rows: list[dict]) -> str:
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f.format(r[k]) if k in r else "" for k, _, f in cols) + " |")
    return "\n".join(lines)


def _as_tuple(value) -> tuple:
    if isinstance(value, str):
        return tuple(float(v) if "." in v else int(v) for v in value.replace("x", ",").split(",") if v)
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def run(
    networks: str | Sequence[str] = "all",
    patch: Sequence[int] | str = (128, 128, 64),
    threads: int = 2,
    warmup: int = 1,
    repeats: int = 3,
    ct_size_mm: Sequence[float] | str = (300, 300, 400),
    spacing_mm: Sequence[float] | str = (1.0, 1.0, 1.0),
    overlap: float = 0.5,
    cpu_power_w: float = DEFAULT_CPU_POWER_W,
    gpu_power_w: float = DEFAULT_GPU_POWER_W,
    grid_gco2_per_kwh: float = DEFAULT_GRID_GCO2_PER_KWH,
    gpu: bool = True,
    timing: bool = True,
    out: str | None = None,
    note: str = "",
) -> str:
    """Measure every network in ``networks`` ("all" or a comma-separated list) and return the markdown report; with
    ``out`` (a path without extension) also write ``out.md``, ``out.csv`` and ``out.json``."""
    from scripts.networks import NETWORKS

    names = list(NETWORKS) if networks in ("all", None) else [n for n in _as_tuple_names(networks)]
    patch, ct_size_mm, spacing_mm = _as_tuple(patch), _as_tuple(ct_size_mm), _as_tuple(spacing_mm)
    rows = []
    for name in names:
        print(f"[cost] {name} ...", file=sys.stderr, flush=True)
        rows.append(
            cost_row(name, patch, threads, warmup, repeats, ct_size_mm, spacing_mm, overlap, cpu_power_w,
                     gpu_power_w, grid_gco2_per_kwh, gpu, timing)
        )
    settings = {
        "command": ("python ../benchmarks/cost.py " + shlex.join(sys.argv[1:])
                    if sys.argv and "cost" in sys.argv[0] else ""),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "warmup": warmup,
        "repeats": repeats,
        "ct_size_mm": list(ct_size_mm),
        "spacing_mm": list(spacing_mm),
        "overlap": overlap,
        "cpu_power_w": cpu_power_w,
        "gpu_power_w": gpu_power_w,
        "grid_gco2_per_kwh": grid_gco2_per_kwh,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    report = "\n".join([
        f"Command (from the bundle root): `{settings['command']}`" if settings["command"] else "",
        "",
        markdown_table(rows),
        "",
        f"Settings: torch {settings['torch']}, {settings['cpu_count']} logical CPUs, torch threads {threads}, "
        f"warm-up {warmup}, repeats {repeats} (median reported), batch 1, fp32, eval + inference_mode. "
        f"CT {list(ct_size_mm)} mm at {list(spacing_mm)} mm, sliding window overlap {overlap}. "
        f"Energy = time x {cpu_power_w} W (CPU) / {gpu_power_w} W (GPU) assumed power; "
        f"CO2 = energy x {grid_gco2_per_kwh} gCO2/kWh.",
    ] + ([note] if note else []))
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))
        keys = [k for k, _, _ in COLUMNS if any(k in r for r in rows)] + ["cpu_peak_rss_mib", "ct_voxels"]
        with out.with_suffix(".csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        out.with_suffix(".md").write_text(report + "\n")
    return report


def _as_tuple_names(networks) -> list[str]:
    if isinstance(networks, str):
        return [n.strip() for n in networks.split(",") if n.strip()]
    return [str(n) for n in networks]


if __name__ == "__main__":
    import fire

    fire.Fire({"run": run, "row": cost_row, "measure": measure_network})
