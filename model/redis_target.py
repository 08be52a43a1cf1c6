"""Where the Redis of the events lives, as one URL for the service (ELCREC_REDIS_URL) and the retraining job
(--redis): a plain `redis://` / `rediss://` / `unix://` URL (one Redis, or any node of a Redis Cluster: both sides
ask the server, model/events.py), or Redis Sentinel:

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]

The sentinels name the current primary of `service_name`; the password (if any) is the data nodes'. Clients of a
Sentinel URL ask the sentinels for the primary again whenever a connection to it fails, so a failover costs the
requests in flight, not a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def sentinel_target(url: str) -> SentinelTarget | None:
    """The Sentinel setup a `redis+sentinel://` URL names; None for other URLs; ValueError when malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != SENTINEL_SCHEME:
        return None
    netloc, _, path = rest.partition("/")
    auth, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = []
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":")
        if not colon or not name or not port.isdigit():
            raise ValueError(f"{SENTINEL_SCHEME} URL: sentinel {host!r} is not host:port")
        sentinels.append((name, int(port)))
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(f"{SENTINEL_SCHEME} URL: give the service name and optionally the db: .../mymaster/0")
    return SentinelTarget(sentinels, unquote(parts[0]), int(parts[1]) if len(parts) == 2 else 0, username, password)
