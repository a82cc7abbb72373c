"""scripts.distributed: the DDP run's process group is freed (worker threads joined) before the interpreter exits.

A one-process gloo group checks the mechanism; tests/integration/test_multi_gpu_train.py runs the whole mixin under
torchrun with two processes.
"""
from __future__ import annotations

import logging
import os
import weakref

import pytest
import torch
import torch.distributed as dist
import torch.distributed.nn  # noqa: F401  before any group exists, as the mixin's initialize does

from scripts.distributed import release_ddp, shut_down


def n_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture
def gloo_group(tmp_path):
    threads = n_threads()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert n_threads() > threads  # gloo's worker threads
    yield threads
    if dist.is_initialized():
        dist.destroy_process_group()


def trained_ddp() -> torch.nn.parallel.DistributedDataParallel:
    torch.manual_seed(0)
    ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 1))
    ddp(torch.ones(2, 3)).sum().backward()  # the reducer has run its all-reduce
    return ddp


def test_shut_down_frees_the_group_and_joins_its_threads(gloo_group, caplog):
    ddp = trained_ddp()
    group = weakref.ref(dist.group.WORLD)
    x = torch.arange(6.0).reshape(2, 3)
    before = ddp.module(x)
    with caplog.at_level(logging.INFO, logger="scripts.distributed"):
        assert shut_down(ddp) is True
    assert not dist.is_initialized()
    assert group() is None
    assert n_threads() == gloo_group  # the group's destructor joined its worker threads
    assert "rank 0: process group destroyed and freed" in caplog.text
    assert not any(hasattr(ddp, name) for name in ("logger", "reducer", "process_group"))
    assert torch.equal(ddp.module(x), before)  # the wrapped network is untouched


def test_destroy_alone_leaves_the_group_alive_under_ddp(gloo_group):
    # what release_ddp is for: DDP's reducer keeps the group (and its threads) alive past destroy_process_group()
    ddp = trained_ddp()
    group = weakref.ref(dist.group.WORLD)
    dist.destroy_process_group()
    assert group() is not None and n_threads() > gloo_group
    release_ddp(ddp)
    assert group() is None and n_threads() == gloo_group


def test_a_group_still_referenced_is_reported(gloo_group, caplog):
    pinned = dist.group.WORLD  # e.g. a default argument bound after init_process_group
    with caplog.at_level(logging.WARNING, logger="scripts.distributed"):
        assert shut_down(trained_ddp()) is False
    assert "rank 0: the default process group is still referenced after destroy_process_group()" in caplog.text
    assert "SIGABRT" in caplog.text
    del pinned


def test_without_a_group_and_for_a_plain_module_nothing_happens():
    assert not dist.is_initialized()
    net = torch.nn.Linear(3, 1)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert shut_down(net) is True
    release_ddp(net)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert sorted(vars(net)) == sorted(vars(torch.nn.Linear(3, 1)))
