"""The plan files next to the models (``<bundle>/models/plan.json`` + ``fingerprint.json``) and how configs read them.

* :func:`make_plan` — fingerprint the labelled cases, plan, write both files (the ``plan`` config's component).
* :func:`load_plan_or_defaults` — what train/evaluate/inference configs call: the plan's spacing, patch size, batch
  size and CT normalisation in the bundle's RAS ``(x, y, z)`` order, or the paper's defaults (1 mm, 128x128x64,
  HU [-1000, 2000] -> [-1, 1]) when there is no plan; ``from_plan`` says which, and it is logged.

``plan.json`` is nnU-Net's ``nnUNetPlans.json`` (``configurations`` in nnU-Net's transposed ``(z, y, x)`` order, so it
diffs 1:1 with nnU-Net's file) plus a ``bundle`` section holding the RAS values the configs use.

Both normalisations are one affine map after clipping: CT z-scoring clips to the foreground [p0.5, p99.5] and maps
``x -> (x - mean) / std``; the paper's window is the same with clip [-1000, 2000], mean 500, std 1500. So a config can
keep ``ScaleIntensityRanged(a_min, a_max, b_min, b_max, clip=True)`` and take the four numbers from here.

CLI (from the bundle root)::

    python -m scripts.plan.plan_file make [--dataset_dir X | --datalist X] [--preset cpu] [--output_dir models]
    python -m scripts.plan.plan_file show [--path models/plan.json] [--network spine_context_resunet]
"""
from __future__ import annotations

import datetime
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..flags import as_bool
from .fingerprint import NUM_FOREGROUND_SAMPLES_TOTAL, extract_fingerprint, load_fingerprint, save_fingerprint
from .planner import bundle_view, fit_patch_to_network, network_divisor, plan_experiment

logger = logging.getLogger(__name__)

__all__ = [
    "FINGERPRINT_FILE",
    "PAPER_DEFAULTS",
    "PLAN_FILE",
    "load_plan_or_defaults",
    "make_plan",
    "read_plan",
    "write_plan",
]

PLAN_FILE = "plan.json"
FINGERPRINT_FILE = "fingerprint.json"
#: The SpineContextResUNet paper's pipeline: 1 mm isotropic, 128x128x64 window, HU [-1000, 2000] -> [-1, 1],
#: batch of 4 patches (nnU-Net counts patches; train.yaml draws num_samples patches per volume).
PAPER_DEFAULTS: dict = {
    "spacing": [1.0, 1.0, 1.0],
    "patch_size": [128, 128, 64],
    "batch_size": 4,
    "normalization": {"scheme": "paper_hu_window", "clip": [-1000.0, 2000.0], "mean": 500.0, "std": 1500.0,
                      "a_min": -1000.0, "a_max": 2000.0, "b_min": -1.0, "b_max": 1.0},
}


def _same_cases(fp: Mapping, cases: Sequence[Mapping], axes: str, num_samples_total: float) -> bool:
    images = [str(c["image"][0] if isinstance(c["image"], (list, tuple)) else c["image"]) for c in cases]
    return (fp.get("axes") == axes and fp.get("cases") == images
            and fp.get("num_foreground_samples_per_case") == int(num_samples_total // max(len(images), 1)))


def write_plan(plans: Mapping, output_dir: str | os.PathLike, name: str = PLAN_FILE) -> str:
    path = Path(output_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plans, indent=2) + "\n")
    return str(path)


def read_plan(path: str | os.PathLike) -> dict:
    """Read ``plan.json`` (a file, or a folder holding one); a one-line ``ValueError`` if it is not a plan."""
    path = Path(path)
    if path.is_dir():
        path = path / PLAN_FILE
    try:
        plans = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); delete it or re-run the plan") from None
    if not isinstance(plans, dict) or "configurations" not in plans or "transpose_backward" not in plans:
        raise ValueError(f"{path}: not a plan file (no 'configurations'/'transpose_backward'); re-run the plan")
    return plans


def make_plan(
    cases: Sequence[Mapping],
    output_dir: str | os.PathLike = "models",
    preset: str = "nnunet_default",
    network: str | None = None,
    num_labels: int | None = None,
    target_spacing: Sequence[float] | None = None,
    gpu_memory_target_gb: float | None = None,
    axes: str = "ras",
    clean: bool = False,
    dataset_name: str = "spine_ct",
    num_samples_total: float = NUM_FOREGROUND_SAMPLES_TOTAL,
) -> dict:
    """Fingerprint ``cases`` (all labelled training cases), plan with ``preset`` and write ``fingerprint.json`` and
    ``plan.json`` into ``output_dir``. An existing fingerprint of the same cases is reused unless ``clean``
    (nnU-Net's ``--clean``). ``target_spacing`` is RAS ``(x, y, z)`` here (reversed into nnU-Net order).
    ``num_samples_total`` is nnU-Net's 1e8 foreground samples; lower it only for quick tests. Returns the plan
    (``plan["bundle"]`` holds the RAS values for the configs)."""
    cases = list(cases)
    out = Path(output_dir)
    fp_path = out / FINGERPRINT_FILE
    fp = None
    if fp_path.is_file() and not clean:
        try:
            old = load_fingerprint(fp_path)
            if _same_cases(old, cases, axes, num_samples_total):
                fp = old
                logger.info("plan: reusing fingerprint %s (same %d cases; clean=True recomputes)", fp_path, len(cases))
        except (ValueError, json.JSONDecodeError):
            fp = None
    if fp is None:
        logger.info("plan: fingerprinting %d labelled cases", len(cases))
        fp = extract_fingerprint(cases, axes=axes, num_samples_total=num_samples_total)
        save_fingerprint(fp, fp_path)
    zyx_target = None if target_spacing is None else [float(t) for t in list(target_spacing)[::-1]]
    plans = plan_experiment(fp, preset=preset, num_labels=num_labels, target_spacing=zyx_target,
                            gpu_memory_target_gb=gpu_memory_target_gb, dataset_name=dataset_name)
    plans["bundle"] = bundle_view(plans, network=network)
    if "3d_lowres" in plans["configurations"]:
        plans["bundle_3d_lowres"] = bundle_view(plans, "3d_lowres", network=network)
    plans["created"] = datetime.datetime.now().isoformat(timespec="seconds")
    plans["fingerprint_file"] = FINGERPRINT_FILE
    path = write_plan(plans, out)
    b = plans["bundle"]
    logger.info("plan (%s) written to %s: spacing %s mm, patch %s, batch %d, normalisation clip %s mean %.2f std %.2f",
                preset, path, _fmt(b["spacing"]), b["patch_size"], b["batch_size"],
                _fmt(b["normalization"].get("clip", [])), b["normalization"].get("mean", float("nan")),
                b["normalization"].get("std", float("nan")))
    return plans


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def load_plan_or_defaults(
    path: str | os.PathLike | None = "models/plan.json",
    configuration: str = "3d_fullres",
    network: str | None = None,
    divisor: int | None = None,
    use_plan: bool = True,
) -> dict:
    """The geometry and normalisation a config should use, in RAS ``(x, y, z)`` order.

    Reads ``path`` (``plan.json`` or the folder holding it). If it does not exist (or ``use_plan`` is false, or
    ``path`` is empty), returns the paper's defaults (:data:`PAPER_DEFAULTS`). Keys: ``spacing``, ``patch_size``
    (rounded down to the divisibility of ``network``/``divisor``, else of the network the plan was made for),
    ``patch_size_planned``, ``batch_size``,
    ``normalization`` (``clip``, ``mean``, ``std`` and the equivalent ``a_min``/``a_max``/``b_min``/``b_max`` of
    ``ScaleIntensityRanged``), the same five numbers flat, ``from_plan`` (bool) and ``source`` (text). The choice is
    logged. A plan file that exists but cannot be read raises ``ValueError``.
    """
    if network is not None:
        divisor = network_divisor(network)
    plan_path = None
    use_plan = as_bool(use_plan, "use_plan")
    if use_plan and path:
        plan_path = Path(path)
        if plan_path.is_dir():
            plan_path = plan_path / PLAN_FILE
    if plan_path is not None and plan_path.is_file():
        plans = read_plan(plan_path)
        if divisor is None:  # no network named here: the divisor the plan was made for, if any
            divisor = (plans.get("bundle") or {}).get("divisor")
        view = bundle_view(plans, configuration, divisor=divisor)
        preset = plans.get("preset", {}).get("name", plans.get("plans_name", "?"))
        out = {
            "spacing": view["spacing"],
            "patch_size": view["patch_size"],
            "patch_size_planned": view["patch_size_planned"],
            "batch_size": view["batch_size"],
            "normalization": view["normalization"],
            "from_plan": True,
            "source": f"plan {plan_path} (preset {preset}, {configuration})",
        }
    else:
        why = "no plan requested" if not (use_plan and path) else f"no plan at {plan_path}"
        d = PAPER_DEFAULTS
        patch = list(d["patch_size"]) if divisor is None else fit_patch_to_network(d["patch_size"], divisor=divisor)
        out = {
            "spacing": list(d["spacing"]),
            "patch_size": patch,
            "patch_size_planned": list(d["patch_size"]),
            "batch_size": d["batch_size"],
            "normalization": dict(d["normalization"]),
            "from_plan": False,
            "source": f"paper defaults ({why})",
        }
    norm = out["normalization"]
    if "clip" not in norm:
        raise ValueError(f"{out['source']}: normalisation scheme {norm.get('scheme')} is not a CT clip + z-score; "
                         "the bundle's configs need CT data (channel name 'CT')")
    for key in ("a_min", "a_max", "b_min", "b_max", "mean", "std"):
        out[key] = float(norm[key])
    out["clip"] = [float(c) for c in norm["clip"]]
    logger.info("geometry from %s: spacing %s mm, patch %s, batch %d, intensity clip %s -> [%.3f, %.3f]",
                out["source"], _fmt(out["spacing"]), out["patch_size"], out["batch_size"], _fmt(out["clip"]),
                out["b_min"], out["b_max"])
    return out


def plan_from_sources(
    dataset_dir: str | None = None,
    datalist: str | None = None,
    phantom_dir: str = "data/phantom",
    n_phantoms: int = 10,
    output_dir: str = "models",
    preset: str = "nnunet_default",
    network: str | None = None,
    num_labels: int | None = None,
    target_spacing: Sequence[float] | None = None,
    clean: bool = False,
) -> dict:
    """:func:`make_plan` on all labelled training cases (training + validation folds) of a dataset folder, a datalist
    or the built-in phantom set (``scripts.data.sources.training_data``)."""
    from scripts.data.sources import training_data

    data = training_data(dataset_dir or None, datalist or None, phantom_dir, n_phantoms)
    cases = list(data["training"]) + list(data.get("validation") or [])
    return make_plan(cases, output_dir=output_dir, preset=preset, network=network or None, num_labels=num_labels,
                     target_spacing=target_spacing, clean=clean)


def _cli_make(**kwargs) -> str:
    plans = plan_from_sources(**kwargs)
    return json.dumps(plans["bundle"], indent=2)


def _cli_show(path: str = "models/plan.json", configuration: str = "3d_fullres", network: str | None = None) -> str:
    return json.dumps(load_plan_or_defaults(path, configuration, network=network), indent=2)


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fire.Fire({"make": _cli_make, "show": _cli_show})
