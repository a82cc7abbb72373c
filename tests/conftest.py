"""Shared pytest fixtures: put the bundle root on sys.path (so ``scripts.*`` imports as in a bundle run)
and locate the read-only real data in ``../shared``."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
SHARED = Path(os.environ.get("SPINE_SHARED_DIR", REPO.parent / "shared"))
REAL = SHARED / "data" / "real"

if str(BUNDLE) not in sys.path:
    sys.path.insert(0, str(BUNDLE))


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    return BUNDLE
