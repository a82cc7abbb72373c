"""Shutting a DDP run down cleanly, for the ``finalize`` of ``configs/multi_gpu_train.yaml``.

Why this exists: a gloo worker thread can hold the last reference to a finished collective (an all-gather's input
tensor, or a backward all-reduce that captured the autograd context). If that thread lets go while the interpreter
is finalizing, it cannot take the GIL, ``pthread_exit`` unwinds through a ``noexcept`` destructor and the rank dies
with ``terminate called without an active exception`` (SIGABRT) after training has finished; torchrun then reports
the run as failed. Backtraces of two such aborts (torch 2.13, 2-process gloo) showed ``ProcessGroupGloo::runLoop``
destroying an ``AsyncAllgatherWork`` / ``AsyncAllreduceWork`` inside ``take_gil`` while the main thread was in
``Py_FinalizeEx``.

The cure is to free the process group itself before the interpreter finalizes: its destructor joins the worker
threads (with the GIL released), so none is left to race. ``destroy_process_group()`` alone does not free it while
something else still references it. Two things do:

- the DDP module's ``process_group``, ``reducer`` and ``logger`` (dropped by :func:`release_ddp`);
- ``torch.distributed.nn.functional``, whose functions take ``group=group.WORLD`` as a default argument, evaluated
  once at import. DDP imports it (through ``torch._dynamo``) after the group exists, which pins the group for the
  life of the process. Importing it before ``init_process_group`` binds ``None`` instead; the mixin's
  ``initialize`` does that.
"""
from __future__ import annotations

import logging
import weakref

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def release_ddp(network: torch.nn.Module | None) -> None:
    """Drop a DDP module's references to its process group: ``logger``, ``reducer`` (C++) and ``process_group``.

    These are the attributes DDP itself leaves out when it is pickled (``__getstate__``). The wrapped
    ``network.module`` and its weights are untouched; the DDP wrapper cannot run another backward afterwards.
    Anything other than a DDP module is left alone.
    """
    if not isinstance(network, torch.nn.parallel.DistributedDataParallel):
        return
    for name in ("logger", "reducer", "process_group"):
        network.__dict__.pop(name, None)


def shut_down(network: torch.nn.Module | None = None) -> bool:
    """Release ``network`` (if DDP) and destroy the default process group; True if the group was freed.

    False means something still references the group, so its gloo worker threads live on until interpreter exit,
    where they can abort the process; a warning says so. Without an initialized group it does nothing (True).
    """
    if not dist.is_initialized():
        return True
    release_ddp(network)
    group = weakref.ref(dist.group.WORLD)
    rank = dist.get_rank()
    dist.destroy_process_group()
    if group() is not None:
        logger.warning(
            "rank %d: the default process group is still referenced after destroy_process_group(); its gloo worker "
            "threads outlive it and can abort this process at exit (SIGABRT). Was torch.distributed.nn imported "
            "after init_process_group?", rank)
        return False
    logger.info("rank %d: process group destroyed and freed", rank)
    return True
