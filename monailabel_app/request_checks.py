"""Checks on MONAI Label request values before any of them reaches the bundle's ``monai.bundle run`` config.

monai.bundle runs a config string that starts with ``$`` as Python (``@`` is a reference, ``%`` a macro), and MONAI
Label's bundle tasks copy request values (``max_epochs``, ``device``, ...) into the config as they come. So:

* /train/: every key must be one of :data:`TRAIN_KEYS`, each with a typed value (int, float, bool, a device name, a
  model file in the bundle's ``models/``, the ``patch_size`` format "96,96,48"); ``run_id`` is always ``"run"``;
  experiment tracking is off (its keys are dropped).
* /infer/: the keys that reach the bundle (``device``, ``model_filename``) are typed; the others are MONAI Label's
  own (image, label_tag, client_id, ...) and pass, unless a string anywhere in the request starts with ``$``, ``@``
  or ``%``.

A refusal raises :class:`RequestRejected` with one line ``"<endpoint> <key>: <problem>"``. Importable without
monailabel (``main.py`` turns the error into an HTTP 422 reply).
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence

__all__ = ["RUN_ID", "TRAIN_KEYS", "RequestRejected", "check_train_request", "check_infer_request", "model_files"]

RUN_ID = "run"
EXPRESSION_PREFIXES = ("$", "@", "%")
_DEVICE = re.compile(r"^(cpu|cuda(:\d{1,2})?)$")
_PATCH_SIZE = re.compile(r"^\[?\s*(\d{1,4})\s*,\s*(\d{1,4})\s*,\s*(\d{1,4})\s*\]?$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_GPUS = re.compile(r"^(all|\d{1,2}(,\d{1,2})*)$")


class RequestRejected(ValueError):
    """A request value that cannot go to the bundle; ``str(err)`` is one line naming the key and the problem."""


class _Context:
    def __init__(self, endpoint: str, models_dir: str, devices: Sequence[str]):
        self.endpoint, self.models_dir, self.devices = endpoint, models_dir, tuple(devices)

    def reject(self, key: str, problem: str):
        raise RequestRejected(f"{self.endpoint} {key}: {problem}")


def model_files(models_dir: str) -> list[str]:
    """The ``*.pt`` files directly in ``models_dir`` (what MONAI Label offers as ``model_filename``)."""
    if not os.path.isdir(models_dir):
        return []
    return sorted(f for f in os.listdir(models_dir) if f.endswith(".pt") and os.path.isfile(os.path.join(models_dir, f)))


def _shown(value) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _first(value):
    """MONAI Label's option lists (devices, model files) mean their first entry when sent back as they are."""
    return value[0] if isinstance(value, (list, tuple)) and value else value


def _text(ctx, key, value) -> str:
    if not isinstance(value, str):
        ctx.reject(key, f"expected text, got {_shown(value)}")
    if value.lstrip().startswith(EXPRESSION_PREFIXES):
        ctx.reject(key, f"{_shown(value)} is not allowed (no value may start with $, @ or %)")
    return value


def _int(minimum: int, maximum: int) -> Callable:
    def parse(ctx, key, value) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
            value = int(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            ctx.reject(key, f"expected an integer in [{minimum}, {maximum}], got {_shown(value)}")
        return value
    return parse


def _float(minimum: float, maximum: float, open_max: bool = False) -> Callable:
    def parse(ctx, key, value) -> float:
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and minimum <= value and (value < maximum if open_max else value <= maximum)
        if not ok:
            ctx.reject(key, f"expected a number in [{minimum:g}, {maximum:g}{')' if open_max else ']'}, "
                            f"got {_shown(value)}")
        return float(value)
    return parse


def _bool(ctx, key, value) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        ctx.reject(key, f"expected true or false, got {_shown(value)}")
    return value


def _val_split(ctx, key, value) -> float:
    value = _float(-1.0, 1.0, open_max=True)(ctx, key, value)
    if value < 0 and value != -1:
        ctx.reject(key, f"expected a fraction in [0, 1) or -1 (the bundle's validation list), got {value:g}")
    return value


def _device(ctx, key, value) -> str:
    value = _first(value)
    if isinstance(value, str) and (_DEVICE.match(value.strip()) or value in ctx.devices):
        return value.strip() if _DEVICE.match(value.strip()) else value
    known = ", ".join(["cpu", "cuda", "cuda:N", *ctx.devices])
    ctx.reject(key, f"{_shown(value)} is not a device ({known})")


def _model_filename(ctx, key, value) -> str:
    value = _first(value)
    known = model_files(ctx.models_dir)
    if not isinstance(value, str) or value not in known:
        ctx.reject(key, f"{_shown(value)} is not a model file in {ctx.models_dir} (known: {', '.join(known) or 'none'})")
    path = os.path.realpath(os.path.join(ctx.models_dir, value))
    if os.path.dirname(path) != os.path.realpath(ctx.models_dir):     # a symlink pointing out of models/
        ctx.reject(key, f"{_shown(value)} points outside {ctx.models_dir}")
    return value


def _patch_size(ctx, key, value) -> list[int]:
    if isinstance(value, str) and (m := _PATCH_SIZE.match(value.strip())):
        value = [int(v) for v in m.groups()]
    ok = isinstance(value, (list, tuple)) and len(value) == 3 and \
        all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1024 for v in value)
    if not ok:
        ctx.reject(key, f"expected 3 positive integers like \"96,96,48\", got {_shown(value)}")
    return list(value)


def _gpus(ctx, key, value) -> str:
    if not isinstance(value, str) or not _GPUS.match(value.replace(" ", "")):
        ctx.reject(key, f"expected \"all\" or GPU indices like \"0,1\", got {_shown(value)}")
    return value.replace(" ", "")


def _run_id(ctx, key, value) -> str:
    if value not in (None, "", RUN_ID):
        ctx.reject(key, f"the bundle's run id is fixed to {RUN_ID!r}, got {_shown(value)}")
    return RUN_ID


def _tracking(ctx, key, value) -> str:
    value = _first(value)
    if value not in (None, "") and not (isinstance(value, str) and value.strip().lower() == "none"):
        ctx.reject(key, f"experiment tracking is not available in this app, got {_shown(value)}")
    return ""


#: the bundle's own train options (main.py's TRAIN_OPTIONS): "" or None keeps the bundle's value
BUNDLE_TRAIN_OPTIONS: dict[str, Callable] = {
    "patch_size": _patch_size,
    "num_samples": _int(1, 64),
    "learning_rate": _float(0.0, 1.0),
    "val_interval": _int(1, 100_000),
}
def _bundle_path(ctx, key, value):
    """MONAI Label's own ``bundle_path`` (``AsyncTask.run`` adds it before the training subprocess starts): only the
    served bundle, the folder that holds ``models/``."""
    text = _text(ctx, key, value)
    if os.path.realpath(text) != os.path.realpath(os.path.dirname(os.path.normpath(ctx.models_dir))):
        ctx.reject(key, f"{_shown(value)} is not the served bundle")
    return text


#: every key a /train/ request may hold, with its parser; None = dropped after the check (never used)
TRAIN_KEYS: dict[str, Callable] = {
    "bundle_path": _bundle_path,
    "local_rank": _int(-1, 1024),  # MONAI Label's launcher adds it in the training subprocess
    "model": _text,
    "client_id": _text,
    "max_epochs": _int(1, 100_000),
    "val_split": _val_split,
    "device": _device,
    "pretrained": _bool,
    "multi_gpu": _bool,
    "force_multi_gpu": _bool,
    "multi_node": _bool,
    "gpus": _gpus,
    "run_id": _run_id,
    "model_filename": _model_filename,
    "tracking": _tracking,
    **BUNDLE_TRAIN_OPTIONS,
}
_DROPPED_TRAIN_KEYS = {"tracking_uri": _text, "tracking_experiment_name": _text, "tracking_run_name": _text}


def check_train_request(request: Mapping, models_dir: str, devices: Sequence[str] = ()) -> dict:
    """The /train/ request with every value checked and typed, ``run_id`` set to ``"run"`` and tracking off.

    ``models_dir`` is the bundle's ``models/`` folder (``model_filename`` must name a ``*.pt`` file in it);
    ``devices`` are extra device names the server offers (MONAI Label's ``device_list()``, e.g. a GPU's name).
    Raises :class:`RequestRejected` on the first key that is unknown or has a wrong value."""
    ctx = _Context("/train/", models_dir, devices)
    if not isinstance(request, Mapping):
        ctx.reject("request", f"expected an object of options, got {_shown(request)}")
    checked = {"run_id": RUN_ID, "tracking": ""}
    for key, value in request.items():
        if key in _DROPPED_TRAIN_KEYS:
            if value is not None:
                _text(ctx, key, value)
            continue
        if key not in TRAIN_KEYS:
            ctx.reject(str(key), f"unknown option (allowed: {', '.join(sorted({**TRAIN_KEYS, **_DROPPED_TRAIN_KEYS}))})")
        if key in BUNDLE_TRAIN_OPTIONS and value in (None, ""):
            continue
        checked[key] = TRAIN_KEYS[key](ctx, key, value)
    return checked


def _no_expressions(ctx, key, value):
    if isinstance(value, str):
        _text(ctx, key, value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _no_expressions(ctx, f"{key}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _no_expressions(ctx, f"{key}[{i}]", v)


def check_infer_request(request: Mapping, models_dir: str, devices: Sequence[str] = ()) -> dict:
    """The /infer/ request with ``device`` and ``model_filename`` checked and typed (when given) and no string
    anywhere that starts with ``$``, ``@`` or ``%``. Raises :class:`RequestRejected`."""
    ctx = _Context("/infer/", models_dir, devices)
    if not isinstance(request, Mapping):
        ctx.reject("request", f"expected an object of options, got {_shown(request)}")
    checked = dict(request)
    for key, parse in (("device", _device), ("model_filename", _model_filename)):
        if checked.get(key) not in (None, ""):
            checked[key] = parse(ctx, key, checked[key])
    for key, value in checked.items():
        _no_expressions(ctx, str(key), value)
    return checked
