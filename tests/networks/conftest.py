"""Helpers shared by the network tests."""
import pytest
import torch


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every network test runs with one intra-op thread (``one_thread`` in tests/conftest.py)."""
