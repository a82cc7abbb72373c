"""Shared pytest fixtures: put the bundle root on sys.path (so ``scripts.*`` imports as in a bundle run)
and locate the read-only real data in ``../shared``. Also the test tiers (markers registered in pyproject.toml):
every test under ``tests/integration/`` is marked ``integration``, every other test ``unit``."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
SHARED = Path(os.environ.get("SPINE_SHARED_DIR", REPO.parent / "shared"))
REAL = SHARED / "data" / "real"

if str(BUNDLE) not in sys.path:
    sys.path.insert(0, str(BUNDLE))

from benchmarks.benchmark_inference import PEER_PYTHON  # noqa: E402  the nnU-Net peer venv's python, one default

INTEGRATION = REPO / "tests" / "integration"


def pytest_collection_modifyitems(config, items):
    """The tier of each test from its folder: ``integration`` under tests/integration/, ``unit`` elsewhere, unless
    the test is marked ``integration`` itself (a peer-venv test beside the unit tests of its module). A conftest's
    collection hook sees every collected item, so this one, at the root, serves the whole suite."""
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
        elif item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    return BUNDLE


@pytest.fixture
def one_thread():
    """One intra-op thread: on a busy shared CPU, multi-threaded OpenMP stalls make small passes 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def peer_python() -> Path:
    """The nnU-Net peer venv's python (nnU-Net v2 itself, for the plan comparison and the inference benchmark's
    nnU-Net row); created on first use (timed), skipped only if it cannot be created."""
    script = REPO / "tests" / "integration" / "make_nnunet_venv.sh"
    start = time.time()
    try:
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=1500, check=False,
                              env={**os.environ, "SPINE_PEER_VENV": str(PEER_PYTHON.parents[1])})
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"nnU-Net peer venv could not be created ({err}); the comparison with nnU-Net needs it")
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        pytest.skip(f"nnU-Net peer venv could not be created by {script.name} (exit {proc.returncode}): {tail}")
    took = time.time() - start
    sys.stderr.write(f"\n[nnU-Net peer] venv ready in {took:.0f} s: {proc.stdout.strip().splitlines()[0]}\n")
    return PEER_PYTHON
