"""Fixtures for the retraining tests: one tiny trained store per session (copied per test) and a real
redis-server (emptied per test)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.retrain.retrain_testkit import REDIS_SERVER, RedisServer, train_store, write_base


@pytest.fixture(autouse=True)
def _no_elcrec_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ELCREC_") and name != "ELCREC_SHARED":
            monkeypatch.delenv(name)


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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).is_file():
        pytest.skip(f"redis-server not found at {REDIS_SERVER}: install it to run the retraining tests")
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    with redis_server.client() as c:
        c.flushall()
    return redis_server.url
