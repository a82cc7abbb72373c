"""nnU-Net-style planning for the bundle: dataset fingerprint -> plan file -> the configs' geometry.

* :mod:`.fingerprint` — nnU-Net v2's dataset fingerprint (crop to nonzero, spacings, shapes, foreground intensities).
* :mod:`.planner` — nnU-Net v2's ExperimentPlanner (3d_fullres/3d_lowres) in numpy, presets ``nnunet_default``,
  ``resenc_m``, ``resenc_l``, ``cpu``; ``fit_patch_to_network`` for a network's divisibility.
* :mod:`.plan_file` — ``models/plan.json`` + ``models/fingerprint.json``; ``load_plan_or_defaults`` for configs.

Axis order: fingerprints and nnU-Net-form plans are (z, y, x) of the RAS-reoriented image (nnU-Net's order); the
values configs read (``plan["bundle"]``, ``load_plan_or_defaults``) are RAS (x, y, z).

The names below are imported lazily, so that ``python -m scripts.plan.<module>`` runs each module cleanly.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "extract_fingerprint": "fingerprint",
    "load_fingerprint": "fingerprint",
    "save_fingerprint": "fingerprint",
    "PRESETS": "planner",
    "bundle_view": "planner",
    "fit_patch_to_network": "planner",
    "get_pool_and_conv_props": "planner",
    "network_divisor": "planner",
    "plan_experiment": "planner",
    "PAPER_DEFAULTS": "plan_file",
    "load_plan_or_defaults": "plan_file",
    "make_plan": "plan_file",
    "plan_from_sources": "plan_file",
    "read_plan": "plan_file",
    "write_plan": "plan_file",
}
__all__ = [  # noqa: RUF022 - grouped by module as _EXPORTS
    "extract_fingerprint", "load_fingerprint", "save_fingerprint",
    "PRESETS", "bundle_view", "fit_patch_to_network", "get_pool_and_conv_props", "network_divisor", "plan_experiment",
    "PAPER_DEFAULTS", "load_plan_or_defaults", "make_plan", "plan_from_sources", "read_plan", "write_plan",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
