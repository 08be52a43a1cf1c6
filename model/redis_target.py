"""Where the Redis of the events lives, as one URL for the service (ELCREC_REDIS_URL) and the retraining job
(--redis): a plain `redis://` / `rediss://` / `unix://` URL (one Redis, or any node of a Redis Cluster: both sides
ask the server, model/events.py), or Redis Sentinel:

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]

The sentinels name the current primary of `service_name`; the password (if any) is the data nodes'. Clients of a
Sentinel URL ask the sentinels for the primary again whenever a connection to it fails, so a failover costs the
requests in flight, not a restart.

Every Redis client of the service and the job is made here (connect*), so that both reach the same server the same
way: a Sentinel URL's primary, or a cluster found by asking the server (layout_of*).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.sentinel import Sentinel

from elcrec.model.events import SINGLE, Layout, layout_for

log = logging.getLogger("elcrec.redis")

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


# -- connections: the one place that turns a URL into clients, for the service (asyncio) and the job (blocking) --


def cluster_url(url: str) -> str:
    """The URL for a cluster client: a cluster has database 0 only, and its client refuses `redis://host:port/0`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="")) if parts.path.strip("/") in ("", "0") else url


def node_url(url: str, host: str, port: int) -> str:
    """`url`'s scheme and credentials for one cluster node (database 0)."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}:{port}" if auth else f"{host}:{port}", path=""))


def connect(url: str, timeout_s: float, connect_timeout_s: float) -> redis.Redis:
    """A blocking client of one Redis, or of the primary a Sentinel URL names (asked again after a failed
    connection). ValueError when the URL is malformed."""
    target = sentinel_target(url)
    if target is None:
        return redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout_s,
                                    socket_connect_timeout=connect_timeout_s)
    sentinel = Sentinel(target.sentinels, socket_timeout=connect_timeout_s, socket_connect_timeout=connect_timeout_s)
    client: redis.Redis = sentinel.master_for(
        target.service, db=target.db, username=target.username, password=target.password, decode_responses=True,
        socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s,
    )
    return client


def close(client: redis.Redis | redis.RedisCluster) -> None:
    """Close a client of connect*, with the connections to the sentinels that name its primary."""
    client.close()
    sentinels = getattr(client.connection_pool, "sentinel_manager", None) if isinstance(client, redis.Redis) else None
    if sentinels is not None:
        sentinels.close()


def connect_cluster(url: str, timeout_s: float, connect_timeout_s: float) -> redis.RedisCluster:
    return redis.RedisCluster.from_url(cluster_url(url), decode_responses=True, socket_timeout=timeout_s,
                                       socket_connect_timeout=connect_timeout_s)


def layout_of(client: redis.Redis) -> Layout:
    """One Redis or a cluster, as the server says (`INFO cluster`; model/events.py Layout)."""
    try:
        return layout_for(client.info("cluster"))
    except ResponseError as exc:
        return _refused(exc)


def connect_async(url: str, timeout_s: float, max_connections: int, retries: int) -> aioredis.Redis:
    """An asyncio client of one Redis, or of the primary a Sentinel URL names, with a bounded pool: waiting for a
    connection and every socket call time out after `timeout_s`, and a failed command is sent again `retries`
    times on a new connection (0 for writes that must not be sent twice)."""
    target = sentinel_target(url)
    if target is None:
        return aioredis.Redis.from_pool(_pool(url, timeout_s, max_connections, retries))
    sentinel = AsyncSentinel(target.sentinels, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    client: aioredis.Redis = sentinel.master_for(
        target.service, db=target.db, username=target.username, password=target.password, decode_responses=True,
        socket_timeout=timeout_s, socket_connect_timeout=timeout_s, max_connections=max_connections,
        retry=AsyncRetry(NoBackoff(), retries),
    )
    return client


async def aclose(client: aioredis.Redis | AsyncRedisCluster) -> None:
    """close, for an asyncio client."""
    await client.aclose()
    sentinels = getattr(client.connection_pool, "sentinel_manager", None) if isinstance(client, aioredis.Redis) else None
    if sentinels is not None:
        await sentinels.aclose()


def connect_cluster_async(url: str, timeout_s: float, max_connections: int) -> AsyncRedisCluster:
    return AsyncRedisCluster.from_url(
        cluster_url(url), socket_timeout=timeout_s, socket_connect_timeout=timeout_s, max_connections=max_connections,
        cluster_error_retry_attempts=2, decode_responses=True,
    )


async def layout_of_async(client: aioredis.Redis) -> Layout:
    """layout_of, for an asyncio client."""
    try:
        return layout_for(await client.info("cluster"))
    except ResponseError as exc:
        return _refused(exc)


def _refused(exc: ResponseError) -> Layout:
    # INFO refused by an ACL: no cluster answers its clients that way (a cluster client needs INFO)
    log.warning("Redis refused INFO (%s): taken for a single Redis", exc)
    return SINGLE


def _pool(url: str, timeout_s: float, max_connections: int, retries: int) -> aioredis.BlockingConnectionPool:
    return aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=AsyncRetry(NoBackoff(), retries),  # redis.asyncio's Retry: the synchronous one never retries here
        decode_responses=True,
    )
