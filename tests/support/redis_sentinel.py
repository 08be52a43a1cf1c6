"""A throw-away Redis Sentinel setup on loopback ports: a primary, a replica and one sentinel (quorum 1) that
fails over a second after the primary stops answering."""

from __future__ import annotations

import subprocess

import redis

from tests.support.redis_nodes import RedisNodes
from tests.support.service import REDIS_SERVER, free_port, wait_for

SERVICE = "elcrec"


class SentinelSetup(RedisNodes):
    def __init__(self) -> None:
        self.data_ports = [free_port(), free_port()]  # the first starts as the primary
        self.sentinel_port = free_port()
        super().__init__("elcrec-sentinel-")

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def start(self) -> None:
        try:
            primary, replica = self.data_ports
            self.launch(primary)
            self.launch(replica, "--replicaof", "127.0.0.1", str(primary))
            conf = self.dir / "sentinel.conf"  # sentinel rewrites its config: a file of its own
            conf.write_text("\n".join([
                f"port {self.sentinel_port}", "bind 127.0.0.1", f"dir {self.dir}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 1",
                f"sentinel down-after-milliseconds {SERVICE} 1000",
                f"sentinel failover-timeout {SERVICE} 5000", "",
            ]))
            self.procs[self.sentinel_port] = subprocess.Popen(
                [REDIS_SERVER, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            wait_for(lambda: self.primary() == primary and self.synced(replica), 15, "the sentinel and the replica")
        except BaseException:
            self.stop()
            raise

    def synced(self, port: int) -> bool:
        """A replica whose link to its primary is up (the first full sync done)."""
        with self.node(port) as r:
            info = r.info("replication")
        return info["role"] == "slave" and info.get("master_link_status") == "up"

    def primary(self) -> int | None:
        """The primary's port as the sentinel names it, once its failover (if any) is over; else None."""
        try:
            with redis.Redis(port=self.sentinel_port, decode_responses=True, socket_timeout=2) as r:
                state = r.sentinel_master(SERVICE)
        except redis.RedisError:
            return None
        return int(state["port"]) if state.get("is_master") and not state.get("is_sdown") and not state.get(
            "is_odown") and not state.get("is_failover_in_progress") else None

    def client(self) -> redis.Redis:
        port = self.primary()
        assert port is not None
        return redis.Redis(port=port, decode_responses=True)

    def restart(self, port: int) -> None:
        """Back as a replica of the current primary (the sentinel would reconfigure it too)."""
        current = self.primary()
        assert current is not None and current != port
        self.launch(port, "--replicaof", "127.0.0.1", str(current))
