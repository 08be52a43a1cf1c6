"""Fixtures for the reliability tests: tiny model stores and real redis-server processes (tests/service's
helpers), each test on its own server where it kills or restarts it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.support import REDIS_SERVER, RedisServer, add_version


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_elcrec_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ELCREC_") and name != "ELCREC_SHARED":
            monkeypatch.delenv(name)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    add_version(tmp_path / "store")
    return tmp_path / "store"


def _need_redis() -> None:
    if not Path(REDIS_SERVER).is_file():
        pytest.skip(f"redis-server binary not found at {REDIS_SERVER}: install it to run the Redis tests")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own (no persistence), free to be killed and restarted."""
    _need_redis()
    server = RedisServer()
    server.start()
    yield server
    server.stop()
