"""Helpers shared by the network tests."""
import pytest
import torch


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a busy shared CPU, multi-threaded OpenMP stalls make small passes 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
