"""Training checkpoints that survive being stopped: atomic writes, a best model kept apart from the last state, resume.

A run folder (``ckpt_dir``) holds two files:

- ``model.pt`` (``checkpoint_name``): the network's ``state_dict`` with the best validation score of this run. It is
  replaced only by a strictly better score of the same run (:class:`BestModelSaver`).
- ``last_model.pt`` (``last_checkpoint``: ``last_`` + ``checkpoint_name``): everything needed to continue the run
  after the last completed epoch (:class:`LastCheckpoint`): the network, optimiser, LR scheduler, the trainer's
  epoch and iteration, the RNG states (torch, numpy, Python and each random transform's own generator,
  :class:`RNGState`) and the best score (:class:`BestScore`). ``--resume true`` loads it with MONAI's
  ``CheckpointLoader`` at the trainer's start.

Every write goes to a temporary file in the same folder, then ``os.replace``: a run killed mid-write leaves the
previous file intact. :func:`check_run_folder` runs before any data is loaded, so a new run never lands on a folder
that holds a trained model unless asked to (``--resume true`` or ``--overwrite true``).
"""
from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.transforms import Randomizable

from .atomic_files import atomic_output
from .errors import InputError
from .flags import as_bool
from .weights_sidecar import write_sidecar

logger = logging.getLogger(__name__)


class RunFolderError(InputError):
    """A run folder that the requested run would damage or cannot continue from (``"<path>: <problem>"``)."""


def _bare(network: torch.nn.Module) -> torch.nn.Module:
    """The network inside a ``DistributedDataParallel`` wrapper (its ``state_dict`` without ``module.``)."""
    return network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network


def atomic_save(obj, path: str) -> None:
    """``torch.save`` under a temporary name beside ``path``, flushed to disk, then renamed over ``path``."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())


def check_run_folder(ckpt_dir: str, last_checkpoint: str, checkpoint_name: str = "model.pt", resume: bool = False,
                     overwrite: bool = False) -> str:
    """Stop before training when the run would destroy saved work or could not be scored.

    - ``resume``: ``last_checkpoint`` must exist.
    - neither ``resume`` nor ``overwrite``: ``<ckpt_dir>/<checkpoint_name>`` and ``last_checkpoint`` must not exist.
    Returns ``ckpt_dir``. It reads nothing but the folder, so it runs before any data is made or loaded.
    """
    resume, overwrite = as_bool(resume, "resume"), as_bool(overwrite, "overwrite")
    last, best = last_checkpoint, os.path.join(ckpt_dir, checkpoint_name)
    if resume and overwrite:
        raise RunFolderError(f"{ckpt_dir}: --resume true and --overwrite true exclude each other")
    if resume and not os.path.isfile(last):
        raise RunFolderError(f"{last}: no last checkpoint to resume from (train without --resume to start a run)")
    if not resume and not overwrite:
        existing = [p for p in (best, last) if os.path.isfile(p)]
        if existing:
            raise RunFolderError(
                f"{existing[0]}: a trained model is there already; continue its run with --resume true, "
                "train into a new --ckpt_dir, or replace it with --overwrite true")
    return ckpt_dir


def check_validation_set(items: list, ckpt_dir: str = "") -> int:
    """Stop before training when there is no validation case: the best model is chosen by its score."""
    if not items:
        raise RunFolderError(f"{ckpt_dir or 'validation'}: the validation set is empty; the best model could not be "
                             "chosen (give validation cases, or a datalist with a 'validation' list)")
    return len(items)


def _random_states(transform, seen: set | None = None) -> list[np.random.RandomState]:
    """Every ``RandomState`` of ``transform`` and of the transforms it holds (Compose members, wrapped croppers)."""
    seen = set() if seen is None else seen
    if id(transform) in seen:
        return []
    seen.add(id(transform))
    states = []
    if isinstance(transform, Randomizable) and isinstance(getattr(transform, "R", None), np.random.RandomState):
        states.append(transform.R)
    children = list(getattr(transform, "transforms", ()) or ())
    children += [v for v in vars(transform).values() if isinstance(v, Randomizable)] if hasattr(transform, "__dict__") else []
    for child in children:
        states += _random_states(child, seen)
    return states


def _np_state_to_tensors(state: tuple) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _np_state_from_tensors(state: Mapping) -> tuple:
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
            state["cached_gaussian"])


class RNGState:
    """The random generators a training run draws from, as one ``state_dict`` (torch, numpy, Python, transforms).

    Stored as tensors and plain numbers so that ``torch.load(weights_only=True)`` (MONAI's ``CheckpointLoader``)
    reads it back.
    """

    def __init__(self, transforms=None):
        self.transforms = transforms

    def _transform_states(self) -> list[np.random.RandomState]:
        return _random_states(self.transforms) if self.transforms is not None else []

    def state_dict(self) -> dict:
        version, internal, gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "numpy": _np_state_to_tensors(np.random.get_state()),
            "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                       "gauss": gauss},
            "transforms": [_np_state_to_tensors(r.get_state()) for r in self._transform_states()],
        }

    def load_state_dict(self, state: Mapping) -> None:
        torch.set_rng_state(state["torch"])
        np.random.set_state(_np_state_from_tensors(state["numpy"]))
        py = state["python"]
        random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss"]))
        generators = self._transform_states()
        if len(generators) != len(state["transforms"]):
            raise RunFolderError(f"the checkpoint holds {len(state['transforms'])} random transform states, the "
                                 f"configured pipeline has {len(generators)}: resume with the run's own configs")
        for r, s in zip(generators, state["transforms"]):
            r.set_state(_np_state_from_tensors(s))


class ResumeFromLast:
    """Trainer handler: with ``resume``, load the last checkpoint into ``load_dict`` and the trainer itself at its start, by
    MONAI's ``CheckpointLoader`` (the trainer is added here, where it is known, rather than in the config, where it
    would be a circular reference). Without ``resume`` it attaches nothing."""

    def __init__(self, path: str, load_dict: Mapping, resume: bool = False):
        self.path = path
        self.load_dict = dict(load_dict)
        self.resume = as_bool(resume, "resume")

    def attach(self, engine: Engine) -> None:
        if self.resume:
            from monai.handlers import CheckpointLoader

            CheckpointLoader(self.path, {**self.load_dict, "trainer": engine}, strict=True).attach(engine)


class BestScore:
    """The best validation score of a run so far (and its epoch), as a ``state_dict`` for the last checkpoint."""

    def __init__(self, metric_name: str = "val_mean_dice"):
        self.metric_name = metric_name
        self.best_metric = -float("inf")
        self.best_epoch = -1

    def improves(self, metric: float) -> bool:
        return metric > self.best_metric

    def update(self, metric: float, epoch: int) -> None:
        self.best_metric, self.best_epoch = float(metric), int(epoch)

    def state_dict(self) -> dict:
        return {"best_metric": self.best_metric, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping) -> None:
        self.best_metric = float(state["best_metric"])
        self.best_epoch = int(state["best_epoch"])


class BestModelSaver:
    """Evaluator handler: write the network's ``state_dict`` to ``<ckpt_dir>/<checkpoint_name>`` atomically whenever
    the tracker's metric beats the best score so far of this run (strictly; the :class:`BestScore` resumes from the
    last checkpoint), and its ``sidecar`` (what inference needs to use it) with the score beside it."""

    def __init__(self, ckpt_dir: str, network: torch.nn.Module, tracker: BestScore, checkpoint_name: str = "model.pt",
                 enabled: bool = True, sidecar: Mapping | None = None):
        self.path = os.path.join(ckpt_dir, checkpoint_name)
        self.network = network
        self.tracker = tracker
        self.enabled = as_bool(enabled, "enabled")   # false on the other ranks of a multi-GPU run: they track, rank 0
        self.sidecar = dict(sidecar) if sidecar else None   # writes; scripts/weights_sidecar.py: beside the weights

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        metric = float(engine.state.metrics[self.tracker.metric_name])
        if not self.tracker.improves(metric):
            return
        self.tracker.update(metric, engine.state.epoch)   # the evaluator runs with the trainer's epoch
        if not self.enabled:
            return
        atomic_save(_bare(self.network).state_dict(), self.path)
        if self.sidecar is not None:
            write_sidecar(self.path, {**self.sidecar, "validation": {
                "metric": self.tracker.metric_name, "value": round(metric, 4), "epoch": self.tracker.best_epoch}})
        logger.info("%s: new best %s %.4f", self.path, self.tracker.metric_name, metric)


class LastCheckpoint:
    """Trainer handler: after every ``save_interval`` epochs (and at the end) write ``save_dict``'s state dicts, and
    the trainer's own state, to ``path`` (``last_checkpoint``) atomically. Attach it after the validation and LR-scheduler
    handlers so that the file holds the state the next epoch starts from."""

    def __init__(self, path: str, save_dict: Mapping, save_interval: int = 1, enabled: bool = True):
        self.path = path
        self.enabled = as_bool(enabled, "enabled")   # false on the other ranks of a multi-GPU run
        self.save_dict = dict(save_dict)
        self.save_interval = max(1, int(save_interval))
        self._saved_iteration = -1   # the end of the run writes only if its last epoch was not just written

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._log_start)
        if self.enabled:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self)
            engine.add_event_handler(Events.COMPLETED, self)

    def _log_start(self, engine: Engine) -> None:
        if engine.state.epoch:
            logger.info("resuming at epoch %d (iteration %d) of %d", engine.state.epoch + 1, engine.state.iteration,
                        engine.state.max_epochs)

    def __call__(self, engine: Engine) -> None:
        if engine.state.iteration == self._saved_iteration:
            return
        state = {key: _bare(obj).state_dict() for key, obj in self.save_dict.items()}
        state["trainer"] = engine.state_dict()
        atomic_save(state, self.path)
        self._saved_iteration = engine.state.iteration
