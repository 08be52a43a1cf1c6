"""Fixtures for the service tests: tiny model stores, in-process apps, real redis-server processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.service.support import (
    ELCREC_CLI,
    OFFICIAL_CHECKPOINT,
    REDIS_SERVER,
    TOKEN,
    TOYS_DATA,
    AppClient,
    RedisServer,
    add_version,
    clean_env,
    running_app,
    settings_for,
)


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


@pytest.fixture
async def client(store: Path) -> AsyncIterator[AppClient]:
    """The app on a tiny random model with the in-process history store."""
    async with running_app(settings_for(store, admin_token=TOKEN)) as c:
        yield c


def _need_redis() -> None:
    if not Path(REDIS_SERVER).is_file():
        pytest.skip(f"redis-server binary not found at {REDIS_SERVER}: install it to run the Redis tests")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    _need_redis()
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's redis-server, emptied for this test."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, free to be killed and restarted."""
    _need_redis()
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def official_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`elcrec import-official` of the released Toys checkpoint, run once a session as a real command."""
    if not OFFICIAL_CHECKPOINT.is_file() or not TOYS_DATA.is_file():
        pytest.skip(
            f"shared data absent: needs {OFFICIAL_CHECKPOINT} and {TOYS_DATA} "
            "(set ELCREC_SHARED to the shared directory)"
        )
    if not ELCREC_CLI.is_file():
        pytest.skip(
            f"the elcrec command is not installed beside the interpreter ({ELCREC_CLI}); pip install -e ."
        )
    out = tmp_path_factory.mktemp("official") / "store"
    done = subprocess.run(
        [
            str(ELCREC_CLI),
            "import-official",
            str(OFFICIAL_CHECKPOINT),
            "--data",
            str(TOYS_DATA),
            "--out",
            str(out),
            "--no-evaluate",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    return out
