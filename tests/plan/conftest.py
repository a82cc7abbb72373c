"""Fixtures for the plan tests: the spec folder. (The comparison with nnU-Net v2 itself, its peer venv and its data
sets, is an integration test: tests/integration/test_nnunet_peer.py and tests/integration/conftest.py.)"""
from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import SHARED


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    d = SHARED / "specs"
    if not d.is_dir():
        pytest.skip(f"spec folder not found at {d}")
    return d
