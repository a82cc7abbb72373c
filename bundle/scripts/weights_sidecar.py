"""The sidecar of a weight file: what the weights were trained with, read back by inference.

``models/model.pt`` travels with ``models/model.json``, as an nnU-Net model folder travels with its plans
(``initialize_from_trained_model_folder``). Training writes it beside every saved best model
(:class:`scripts.checkpoints.BestModelSaver`); ``configs/inference.yaml`` reads it, so the network, its arguments, the
voxel spacing, the patch and the HU window at inference are the ones the weights learned with, and are written
nowhere else. Fields:

- ``network``: ``{"name", "out_channels", "args"}`` for :func:`scripts.networks.build_network`, or for
  :func:`scripts.networks.serrador_unet3d.build_instance_network` when the name is a vertebra-instance preset;
- ``task`` (binary | vertebrae | vertebra_instance | vertebra_heatmap), ``spacing`` (mm), ``patch_size`` (voxels; the
  heatmap network's whole input grid), ``intensity`` (the ``ScaleIntensityRange`` window: ``a_min``, ``a_max``,
  ``b_min``, ``b_max``), ``threshold`` (the probability the output is cut at; the heatmap's walk threshold);
- ``validation``: the score that selected the weights (``metric``, ``value``, ``epoch``), and ``training_record``:
  where the run is described (empty if nowhere).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping

from .atomic_files import atomic_output
from .errors import InputError
from .flags import as_bool

REQUIRED = ("network", "task", "spacing", "patch_size", "intensity")
#: the bundle this package belongs to: a relative weights path that is not found from the working directory is
#: looked up here (``monai.bundle.load`` builds ``network_def`` with ``bundle_root: .`` from any directory)
BUNDLE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WeightsError(InputError):
    """Missing or unusable weights (``"<path>: <problem>"``)."""


def sidecar_path(weights: str) -> str:
    """``models/model.pt`` -> ``models/model.json``."""
    return os.path.splitext(str(weights))[0] + ".json"


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def write_sidecar(weights: str, info: Mapping) -> str:
    """Write ``info`` as the sidecar of ``weights`` (temporary file, then rename); returns its path."""
    path = sidecar_path(weights)
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump(_plain(info), f, indent=1)
        f.write("\n")
    return path


def read_sidecar(weights: str, required: bool = True, task: str | None = None,
                 hint: str = "train one, or pass --ckpt_path") -> dict | None:
    """The sidecar of ``weights``; a one-line :class:`WeightsError` if the weights or their sidecar are missing, or
    if ``task`` is given and the sidecar records another one. ``hint`` ends the missing-weights line.

    With ``required`` false, missing weights give ``None`` (the coarse model: the fast path then falls back to the
    whole volume); weights without a sidecar are an error either way.
    """
    weights = str(weights)
    if not os.path.isabs(weights) and not os.path.exists(weights):
        own = os.path.join(BUNDLE_DIR, os.path.normpath(weights))
        weights = own if os.path.exists(own) else weights
    if not os.path.isfile(weights) and not as_bool(required, "required"):
        return None
    if not os.path.isfile(weights):
        raise WeightsError(f"{weights}: weights file does not exist ({hint})")
    path = sidecar_path(weights)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no sidecar for {os.path.basename(weights)}; the weights cannot be used without "
                           "the network, spacing and HU window they were trained with")
    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: cannot read the weights' sidecar: {e}") from None
    missing = [k for k in REQUIRED if k not in info]
    if missing:
        raise WeightsError(f"{path}: the weights' sidecar lacks {', '.join(missing)}")
    if task is not None and info["task"] != task:
        raise WeightsError(f"{path}: these weights are for task '{info['task']}', not '{task}'")
    return info


def build_network_from_sidecar(info: Mapping | None, patch_size=None, channels_last: bool = False):
    """The untrained network the sidecar describes (weights are loaded by the workflow's ``CheckpointLoader``);
    ``None`` for no sidecar."""
    from .networks import build_network
    from .networks.serrador_unet3d import INSTANCE_NETWORKS, build_instance_network

    if info is None:
        return None
    net = info["network"]
    if net["name"] in INSTANCE_NETWORKS:   # the vertebra-instance presets (channels-last by themselves)
        return build_instance_network(net["name"], out_channels=int(net["out_channels"]), **dict(net.get("args") or {}))
    return build_network(net["name"], out_channels=int(net["out_channels"]),
                         patch_size=patch_size if patch_size is not None else info["patch_size"],
                         channels_last=channels_last, **dict(net.get("args") or {}))
