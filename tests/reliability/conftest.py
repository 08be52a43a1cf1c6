"""Fixtures for the reliability tests: a tiny model store per test (the shared ones, a clean ELCREC_* environment
and redis-server processes, come from tests/support/fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.service import add_version


@pytest.fixture
def store(tmp_path: Path) -> Path:
    add_version(tmp_path / "store")
    return tmp_path / "store"
