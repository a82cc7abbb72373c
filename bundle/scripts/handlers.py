"""Ignite/MONAI event handlers of the bundle.

``CaseMetricsCSV`` writes one CSV row of :func:`scripts.metrics.case_metrics` per evaluated case. Use it in an
evaluation config like any MONAI handler::

    handlers:
      - _target_: scripts.handlers.CaseMetricsCSV
        output_dir: "@output_dir"
        filename: metrics.csv

(``SupervisedEvaluator`` calls ``handler.attach(engine)`` for every entry of ``val_handlers``.)

``TrainingTimeLimit`` ends a training after a wall-clock limit (train.yaml's ``time_limit_s``), by ignite's own
``TimeLimit``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing
from monai.utils import IgniteInfo, min_version, optional_import, string_list_all_gather
from monai.utils import ImageMetaKey as Key

from scripts.atomic_files import atomic_output
from scripts.metrics import METRIC_COLUMNS, case_metrics, case_name, summarise

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["CaseMetricsCSV", "TrainingTimeLimit", "foreground_mask", "CSV_COLUMNS"]

logger = logging.getLogger(__name__)

#: columns of the CSV written by :class:`CaseMetricsCSV`
CSV_COLUMNS: list[str] = ["case", *METRIC_COLUMNS]


def foreground_mask(x) -> np.ndarray:
    """Binary foreground (bool numpy, spatial shape) of one decollated, channel-first item.

    Accepted layouts (after the evaluator's post-processing, i.e. already *discrete*):

    * ``(C, *spatial)`` with ``C == 1``: a binary mask or a class-index map -> foreground = ``x[0] != 0``
      (probabilities must have been thresholded before, e.g. ``AsDiscreted(threshold=0.5)``);
    * ``(C, *spatial)`` with ``C > 1``: one-hot or per-class scores -> foreground = ``argmax(x, 0) > 0``
      (channel 0 is background);
    * ``(*spatial)`` with 3 dims (no channel): foreground = ``x != 0``.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if isinstance(x, MetaTensor):
            x = x.as_tensor()
        x = x.numpy()
    x = np.asarray(x)
    if x.ndim == 3:
        return x != 0
    if x.ndim != 4:
        raise ValueError(f"expected a channel-first (C, X, Y, Z) or (X, Y, Z) array, got shape {x.shape}")
    if x.shape[0] == 1:
        return x[0] != 0
    return np.argmax(x, axis=0) > 0


def _meta(x) -> Mapping:
    return x.meta if isinstance(x, MetaTensor) else {}


class CaseMetricsCSV:
    """Per-case metrics CSV for a ``monai.engines.SupervisedEvaluator`` (or any engine whose decollated
    ``state.output`` is a list of dicts).

    On every ``ITERATION_COMPLETED`` each item of ``engine.state.output`` is read:

    * ``item[pred_key]`` and ``item[label_key]``: tensors on the *same* voxel grid, layouts as in
      :func:`foreground_mask`. In the bundle's evaluation both are on the original image grid (the prediction is
      brought back with ``Invertd``), so metrics are in the native resolution;
    * spacing (mm): from the affine of the prediction (``pred.affine``, via ``monai.data.utils.affine_to_spacing``),
      else of the label, else 1 mm with a warning;
    * case name: ``filename_or_obj`` of the image meta, else of the label, else of the pred (base name without the
      extension, see :func:`scripts.metrics.case_name`), else ``case_<n>``.

    On ``EPOCH_COMPLETED`` it writes ``output_dir/filename`` with the columns :data:`CSV_COLUMNS`, one row per case
    in evaluation order, then a row ``mean`` (:func:`scripts.metrics.summarise`: the mean over finite values;
    an empty-prediction case keeps ``inf`` in its own row). It logs and prints one line
    ``mean Dice 0.xxx over N cases -> path``. With ``torch.distributed`` the rows of all ranks are gathered and only
    rank ``save_rank`` writes. Rows are reset on ``EPOCH_STARTED``, so a repeated validation overwrites the file.

    Args:
        output_dir: folder of the CSV (created if missing).
        filename: CSV file name.
        pred_key, label_key, image_key: keys of the decollated output items.
        save_rank: the rank that writes in multi-process runs.
    """

    def __init__(
        self,
        output_dir: str = "./",
        filename: str = "metrics.csv",
        pred_key: str = "pred",
        label_key: str = "label",
        image_key: str = "image",
        save_rank: int = 0,
    ) -> None:
        self.output_dir = str(output_dir)
        self.filename = filename
        self.pred_key = pred_key
        self.label_key = label_key
        self.image_key = image_key
        self.save_rank = save_rank
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, float] = {}

    @property
    def path(self) -> str:
        return os.path.join(self.output_dir, self.filename)

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self.reset, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        if not engine.has_event_handler(self, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        if not engine.has_event_handler(self.write, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        self.rows = []
        self.summary = {}

    # ------------------------------------------------------------------ per iteration
    def _case_name(self, item: Mapping) -> str:
        for key in (self.image_key, self.label_key, self.pred_key):
            name = _meta(item.get(key)).get(Key.FILENAME_OR_OBJ)
            if name:
                return case_name(name)
        return f"case_{len(self.rows)}"

    def _spacing(self, item: Mapping) -> np.ndarray | None:
        for key in (self.pred_key, self.label_key):
            x = item.get(key)
            if isinstance(x, MetaTensor):
                return np.asarray(affine_to_spacing(x.affine.detach().cpu(), r=3), dtype=float)
        warnings.warn("CaseMetricsCSV: no affine on pred/label, distances are in voxels (spacing 1).", stacklevel=2)
        return None

    def __call__(self, engine: Engine) -> None:
        output = engine.state.output
        items = output if isinstance(output, (list, tuple)) else [output]
        for item in items:
            if not isinstance(item, Mapping):
                raise TypeError(
                    f"CaseMetricsCSV expects decollated dict outputs (evaluator decollate=True), got {type(item)}"
                )
            pred = foreground_mask(item[self.pred_key])
            label = foreground_mask(item[self.label_key])
            if pred.shape != label.shape:
                raise ValueError(
                    f"pred {pred.shape} and label {label.shape} are not on the same grid; invert the prediction "
                    "(Invertd) or resample the label before CaseMetricsCSV"
                )
            row: dict[str, Any] = {"case": self._case_name(item)}
            row.update(case_metrics(pred, label, self._spacing(item)))
            self.rows.append(row)

    # ------------------------------------------------------------------ end of epoch
    def _gathered_rows(self) -> list[dict[str, Any]]:
        if idist.get_world_size() <= 1:
            return list(self.rows)
        encoded = string_list_all_gather([json.dumps(r) for r in self.rows])  # json keeps inf/nan (Infinity/NaN)
        return [json.loads(s) for s in encoded]

    def write(self, engine: Engine | None = None) -> str | None:
        """Write the CSV (on ``save_rank`` only); returns its path there, ``None`` elsewhere."""
        rows = self._gathered_rows()
        if idist.get_world_size() > 1 and idist.get_rank() != self.save_rank:
            return None
        self.summary = summarise(rows)
        with atomic_output(self.path) as tmp, open(tmp, "w", newline="") as f:   # complete or absent
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _fmt(row[k]) for k in CSV_COLUMNS})
            writer.writerow({"case": "mean", **{k: _fmt(v) for k, v in self.summary.items()}})
        line = f"mean Dice {self.summary['dice']:.3f} over {len(rows)} cases -> {self.path}"
        logger.info(line)
        print(line)
        return self.path


def _fmt(v: Any) -> Any:
    """Floats with 6 significant decimals; inf/nan as ``inf``/``nan`` (read back by ``float()`` and pandas)."""
    if isinstance(v, float):
        return repr(v) if not math.isfinite(v) else f"{v:.6f}"
    return v


class TrainingTimeLimit:
    """Trainer handler: stop the training ``limit_s`` seconds after it started, cleanly, with ignite's ``TimeLimit``.

    ignite's clock starts when its handler is made; this one makes it at the trainer's ``STARTED``, so the limit
    counts training and validation, not the data caching before them. ``TimeLimit`` checks after every iteration
    and calls ``engine.terminate()``: the epoch in progress ends there, without its ``EPOCH_COMPLETED``, so its
    validation would be lost. With ``validator``, the trainer's ``TERMINATE`` (caused by the limit) runs it once
    more on the last weights (MONAI's ``ValidationHandler``), so that the best model and its sidecar are up to date;
    the last checkpoint follows at ``COMPLETED`` (``scripts.checkpoints.LastCheckpoint``). A stop by any other
    cause is left alone.
    """

    def __init__(self, limit_s: int, validator=None):
        from ignite.handlers import TimeLimit

        self.limit_s = int(limit_s)
        TimeLimit(self.limit_s)   # its own argument check (a positive integer), at once rather than at the start
        self.validation = None
        if validator is not None:
            from monai.handlers import ValidationHandler

            self.validation = ValidationHandler(interval=1, validator=validator, epoch_level=True)
        self.limit = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.start)
        engine.add_event_handler(Events.TERMINATE, self.validate_last)

    def start(self, engine: Engine) -> None:
        from ignite.handlers import TimeLimit

        if self.limit is not None and engine.has_event_handler(self.limit, Events.ITERATION_COMPLETED):
            engine.remove_event_handler(self.limit, Events.ITERATION_COMPLETED)   # a second run(): a new clock
        self.limit = TimeLimit(self.limit_s)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.limit)

    def reached(self) -> bool:
        return self.limit is not None and time.time() - self.limit.start_time > self.limit.limit_sec

    def validate_last(self, engine: Engine) -> None:
        if not self.reached():
            return
        logger.info("time limit of %d s reached at epoch %d, iteration %d", self.limit_s, engine.state.epoch,
                    engine.state.iteration)
        if self.validation is not None:
            self.validation(engine)
