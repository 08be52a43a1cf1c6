"""Throw-away redis-server processes on loopback ports, the common part of the Redis Cluster and Sentinel setups
(tests/support/redis_cluster.py, redis_sentinel.py): start, kill, ask a node its role, stop and clean up."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.support.service import REDIS_SERVER, wait_for


class RedisNodes:
    password: str | None = None

    def __init__(self, prefix: str) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))

    def launch(self, port: int, *options: str) -> None:
        """A redis-server without persistence on `port`, with `options`; returns once it answers."""
        self.procs[port] = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.answers(port), 10, f"redis-server on {port}")

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=2, password=self.password)

    def answers(self, port: int) -> bool:
        try:
            with self.node(port) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def role(self, port: int) -> str:
        with self.node(port) as r:
            return str(r.info("replication")["role"])

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait(timeout=10)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
