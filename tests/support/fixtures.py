"""Fixtures every test folder gets (registered by tests/conftest.py): a clean ELCREC_* environment, the anyio
backend, and real redis-server processes (one a session, emptied per test; or a test's own, to kill)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_cluster import REDIS_CLI, RedisClusterNodes
from tests.support.redis_sentinel import SentinelSetup
from tests.support.service import REDIS_SERVER, RedisServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_elcrec_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ELCREC_") and name != "ELCREC_SHARED":
            monkeypatch.delenv(name)


def _need_redis() -> None:
    if not Path(REDIS_SERVER).is_file():
        pytest.skip(f"redis-server binary not found at {REDIS_SERVER}: install it to run the Redis tests")


def _running_redis() -> Iterator[RedisServer]:
    _need_redis()
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from _running_redis()


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
    yield from _running_redis()


def _need_cluster() -> None:
    _need_redis()
    if not Path(REDIS_CLI).is_file():
        pytest.skip(f"redis-cli not found at {REDIS_CLI}: install redis-tools to run the Redis Cluster tests")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    """Three masters, no replicas, one a session; emptied per test by `cluster_url`."""
    _need_cluster()
    cluster = RedisClusterNodes(masters=3)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterNodes) -> str:
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def own_cluster() -> Iterator[RedisClusterNodes]:
    """Three masters with a replica each, the test's own: free to kill a master and watch a replica take over."""
    _need_cluster()
    cluster = RedisClusterNodes(masters=3, replicas=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_sentinel() -> Iterator[SentinelSetup]:
    """A primary, a replica and a sentinel, the test's own: free to kill the primary."""
    _need_redis()
    setup = SentinelSetup()
    setup.start()
    yield setup
    setup.stop()
