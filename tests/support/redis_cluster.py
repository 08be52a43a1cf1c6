"""A throw-away Redis Cluster on loopback ports: N masters (each with `replicas` replicas), made by
`redis-cli --cluster create`, for the tests that must meet what an operator runs."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess

import redis

from tests.support.redis_nodes import RedisNodes
from tests.support.service import wait_for

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisClusterNodes(RedisNodes):
    def __init__(
        self, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000, password: str | None = None
    ) -> None:
        self.masters, self.replicas, self.node_timeout_ms = masters, replicas, node_timeout_ms
        self.password = password
        self.ports = [_free_node_port() for _ in range(masters * (1 + replicas))]
        super().__init__("elcrec-cluster-")

    @property
    def url(self) -> str:
        """One node's URL, as an operator would set ELCREC_REDIS_URL: the client finds the others."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _launch(self, port: int) -> None:
        self.launch(port, "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    *(["--requirepass", self.password, "--masterauth", self.password] if self.password else []))

    def _start(self) -> None:
        for port in self.ports:
            self._launch(port)
        done = subprocess.run(
            [REDIS_CLI, *(["-a", self.password, "--no-auth-warning"] if self.password else []), "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(self.healthy, 30, "the cluster to be ok on every node")

    def healthy(self) -> bool:
        try:
            for port in self.procs:
                with self.node(port) as r:
                    if r.cluster("info").get("cluster_state") != "ok":
                        return False
            return True
        except redis.RedisError:
            return False

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], decode_responses=True, password=self.password)

    def primaries(self) -> list[int]:
        """Ports of the nodes that are masters now."""
        out = []
        for port in self.procs:
            with self.node(port) as r:
                if r.info("replication")["role"] == "master":
                    out.append(port)
        return out

    def replica_of(self, port: int) -> int:
        with self.node(port) as r:
            return int(r.info("replication")["slave0"]["port"])

    def keys_by_node(self) -> dict[int, list[str]]:
        out = {}
        for port in self.primaries():
            with self.node(port) as r:
                out[port] = sorted(r.scan_iter("*"))
        return out

    def restart(self, port: int) -> None:
        """A killed node back with its cluster config: it rejoins as a replica of whoever took over its slots."""
        self._launch(port)

    def flush(self) -> None:
        for port in self.primaries():
            with self.node(port) as r:
                r.flushall()



def _free_node_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too: the kernel's ephemeral ports are too high."""
    for _ in range(200):
        port = random.randint(20000, 40000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")
