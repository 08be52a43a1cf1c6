"""Fixtures for the retraining tests: one tiny trained store per session, copied per test (the redis-server
fixtures come from tests/support/fixtures.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.retrain import train_store, write_base


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(base file, store with v0001 trained on it), built once."""
    root = tmp_path_factory.mktemp("trained")
    data = write_base(root / "base.txt")
    train_store(data, root / "store")
    return root / "base.txt", root / "store"


@pytest.fixture
def base(trained: tuple[Path, Path]) -> Path:
    return trained[0]


@pytest.fixture
def store(trained: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the trained store that the test may change."""
    return Path(shutil.copytree(trained[1], tmp_path / "store"))
