"""User histories and the event stream: Redis when configured, else a store inside this process.

Redis layout and event encoding: model/events.py (the retraining job reads the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict, deque
from typing import Any, Protocol

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, RedisError

from elcrec.model.events import EVENTS_STREAM, Layout, encode_event, history_key
from elcrec.model.redis_target import aclose, connect_async, connect_cluster_async, layout_of_async, node_url
from elcrec.service.metrics import Metrics
from elcrec.service.resp import PipelinedReader

log = logging.getLogger("elcrec.history")

# The whole list as one JSON string: json.loads in C instead of redis-py's pure-Python parse of each element.
_READ_LIST_AS_JSON = "return cjson.encode(redis.call('LRANGE', KEYS[1], 0, -1))"
_MAX_READS_PER_PIPELINE = 256
# The history and the event stored together or not at all, in one round trip: a script runs atomically, and it
# checks the two keys' types first, since Redis does not undo the first write when a later one fails.
# KEYS: history list, events stream; ARGV: cap, stream maxlen ("" = none), the entry's fields as a JSON object
# (model/events.py encode_event), the items.
_APPEND = """
local stream, list = redis.call('TYPE', KEYS[2]).ok, redis.call('TYPE', KEYS[1]).ok
if (stream ~= 'none' and stream ~= 'stream') or (list ~= 'none' and list ~= 'list') then
  return redis.error_reply('WRONGTYPE the events stream or the history is another kind of key: nothing stored')
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
local fields = cjson.decode(ARGV[3])
local entry = {}
for name, value in pairs(fields) do
  entry[#entry + 1] = name
  entry[#entry + 1] = value
end
if ARGV[2] == '' then
  return redis.call('XADD', KEYS[2], '*', unpack(entry))
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(entry))
"""


class HistoryUnavailable(Exception):
    """The history store cannot be reached; nothing was read or stored."""


class HistoryStore(Protocol):
    @property
    def backend(self) -> str: ...

    async def get(self, user_id: str) -> list[str]: ...

    async def append(self, user_id: str, items: list[str], cap: int) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class MemoryHistory:
    """Histories in a dict, least recently used users evicted; events kept in a bounded deque."""

    backend = "memory"

    def __init__(self, max_users: int = 100_000, max_events: int = 100_000) -> None:
        self.max_users = max_users
        self._lists: OrderedDict[str, list[str]] = OrderedDict()
        self.events: deque[tuple[str, list[str]]] = deque(maxlen=max_events)

    async def get(self, user_id: str) -> list[str]:
        items = self._lists.get(user_id)
        if items is None:
            return []
        self._lists.move_to_end(user_id)
        return list(items)

    async def append(self, user_id: str, items: list[str], cap: int) -> None:
        stored = self._lists.pop(user_id, [])
        self._lists[user_id] = (stored + items)[-cap:]
        self.events.append((user_id, list(items)))
        while len(self._lists) > self.max_users:
            self._lists.popitem(last=False)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisHistory:
    """Histories and events in Redis: one server, a primary named by Redis Sentinel (model/redis_target.py), or a
    Redis Cluster.
    Which one is asked of the server on first use (`INFO cluster`), and the keys follow (model/events.py Layout)."""

    @property
    def backend(self) -> str:
        return "redis-cluster" if self._layout is not None and self._layout.cluster else "redis"

    def __init__(
        self,
        url: str,
        timeout_s: float,
        max_connections: int,
        metrics: Metrics,
        stream_maxlen: int | None = None,
        wait_replicas: int = 0,
    ) -> None:
        # Short socket timeouts and a single quick retry: an outage must turn into a 503 within about a second,
        # never into a hanging request. Reads and PING are retried once on a new connection (they can be sent
        # twice); event writes have a pool without retries (append).
        self._url, self._timeout_s, self._max_connections = url, timeout_s, max_connections
        self._redis = connect_async(url, timeout_s, max_connections, retries=1)
        self._writes = connect_async(url, timeout_s, max_connections, retries=0)
        self._append = self._writes.register_script(_APPEND)
        self._metrics = metrics
        self._stream_maxlen = stream_maxlen
        self._wait_replicas = wait_replicas
        self._reads: list[tuple[str, asyncio.Future[list[str]]]] = []
        # Reads over our own pipelined connection where the URL allows it (service/resp.py), else redis-py.
        self._fast = PipelinedReader(url, timeout_s) if PipelinedReader.supports(url) else None
        self._reader: asyncio.Task[None] | None = None
        self._layout: Layout | None = None  # known after the first call that reached Redis
        self._cluster: ClusterStore | None = None

    def _failed(self, operation: str, exc: Exception) -> HistoryUnavailable:
        self._metrics.redis_errors.labels(operation).inc()
        # Redis's own words go to the log, not to the client (they can be long, and say how the server is set up).
        log.warning("history store (Redis) %s failed: %s: %s", operation, type(exc).__name__, exc)
        return HistoryUnavailable("the history store (Redis) is unavailable")

    async def _find_layout(self) -> Layout:
        if self._layout is None:
            layout = await layout_of_async(self._redis)
            if layout.cluster:
                self._cluster = ClusterStore(self._url, self._timeout_s, self._max_connections, self._wait_replicas)
                log.info("the history store is a Redis Cluster: events over %d streams", layout.shards)
            self._layout = layout
        return self._layout

    async def get(self, user_id: str) -> list[str]:
        # Concurrent reads are coalesced into one pipeline: a round trip and the client's per-command
        # overhead (the dominant cost of redis-py) are paid once per batch, not once per request.
        fut: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._reads.append((user_id, fut))
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._drain_reads(), name="elcrec-history-reads")
        return await fut

    async def _drain_reads(self) -> None:
        while self._reads:
            batch = self._reads[:_MAX_READS_PER_PIPELINE]
            del self._reads[:_MAX_READS_PER_PIPELINE]
            replies: list[Any]
            try:
                layout = await self._find_layout()
                if self._cluster is not None:
                    replies = await self._cluster.read([layout.history_key(u) for u, _ in batch])
                elif self._fast is not None:
                    replies = await self._fast.run([("LRANGE", history_key(u), "0", "-1") for u, _ in batch])
                else:
                    pipe = self._redis.pipeline(transaction=False)
                    for user_id, _ in batch:
                        pipe.eval(_READ_LIST_AS_JSON, 1, history_key(user_id))
                    replies = await pipe.execute(raise_on_error=False)
            except (RedisError, OSError, TimeoutError, hiredis.HiredisError) as exc:
                replies = [exc] * len(batch)
            for (_, fut), reply in zip(batch, replies, strict=True):
                if fut.done():
                    continue
                if isinstance(reply, Exception):
                    fut.set_exception(self._failed("read", reply))
                elif isinstance(reply, list):  # LRANGE
                    fut.set_result(reply)
                else:  # redis-py's EVAL reply: JSON, where cjson writes an empty list as {}
                    items = json.loads(reply)
                    fut.set_result(items if isinstance(items, list) else [])

    async def append(self, user_id: str, items: list[str], cap: int) -> None:
        maxlen = "" if self._stream_maxlen is None else str(self._stream_maxlen)
        args: list[Any] = [cap, maxlen, json.dumps(encode_event(user_id, items)), *items]
        try:
            layout = await self._find_layout()
            if self._cluster is not None:
                await self._cluster.append([layout.history_key(user_id), layout.stream_of(user_id)], args)
                return
            async with self._writes.client() as conn:  # one connection for the check, the write and WAIT
                await self._alive(conn)
                await self._append(keys=[history_key(user_id), EVENTS_STREAM], args=args, client=conn)
                await _replicated(conn, self._wait_replicas, self._timeout_s)
        except (RedisError, OSError) as exc:
            raise self._failed("append", exc) from exc

    @staticmethod
    async def _alive(conn: Redis) -> None:
        """PING the connection the write will use; one found dead (Redis restarted since it was last used) is
        replaced by the next command. A write is never sent twice: once MULTI/EXEC has gone out, a lost reply
        cannot tell whether the event was stored, so only this check is repeated."""
        try:
            await conn.ping()
        except (RedisConnectionError, OSError):
            await conn.ping()

    async def ping(self) -> None:
        try:
            await self._find_layout()
            if self._cluster is not None:
                await self._cluster.ping()
            else:
                await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise self._failed("ping", exc) from exc

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._fast is not None:
            self._fast.close()
        if self._cluster is not None:
            await self._cluster.close()
        await aclose(self._redis)
        await aclose(self._writes)


class NotReplicated(RedisError):
    """The event reached the primary but not the replicas asked for in time."""


async def _replicated(conn: Redis, replicas: int, timeout_s: float) -> None:
    """With ELCREC_REDIS_WAIT_REPLICAS, acknowledge an event only once that many replicas hold it (WAIT on the
    connection that wrote it), so that a failover after the 200 cannot lose it. Short of it, the client gets a 503
    and may send the event again: at least once, never acknowledged and lost."""
    if replicas:
        got = await conn.execute_command("WAIT", replicas, max(1, int(timeout_s * 500)))
        if int(got) < replicas:
            raise NotReplicated(f"the event reached {got} of {replicas} replicas in time")


class ClusterStore:
    """The Redis Cluster side of RedisHistory. Reads go through redis-py's cluster client, pipelined per node and
    retried after a topology change. The event write goes to the node that holds the user's slot, on one connection
    of our own, as on one Redis: PING first (a dead connection or a node that failed over is found before anything
    is sent, and the slot map refreshed), then the script once (a lost reply cannot tell whether it was stored: the
    client gets a 503), then WAIT where replicas are asked for. MOVED (the slot moved, nothing was run) refreshes
    the map and tries again once."""

    def __init__(self, url: str, timeout_s: float, max_connections: int, wait_replicas: int = 0) -> None:
        self._url, self._timeout_s, self._max_connections = url, timeout_s, max_connections
        self._wait_replicas = wait_replicas
        self._cluster = connect_cluster_async(url, timeout_s, max_connections)
        self._nodes: dict[tuple[str, int], tuple[Redis, AsyncScript]] = {}  # write clients, one per primary

    def _node(self, host: str, port: int) -> tuple[Redis, AsyncScript]:
        if (host, port) not in self._nodes:
            client = connect_async(node_url(self._url, host, port), self._timeout_s, self._max_connections, 0)
            self._nodes[host, port] = client, client.register_script(_APPEND)
        return self._nodes[host, port]

    async def read(self, keys: list[str]) -> list[Any]:
        pipe = self._cluster.pipeline()
        for key in keys:
            pipe.lrange(key, 0, -1)
        return await pipe.execute(raise_on_error=False)

    async def append(self, keys: list[str], args: list[Any]) -> None:
        for attempt in (1, 2):
            await self._cluster.initialize()  # no-op once the slot map is known
            node = self._cluster.get_node_from_key(keys[0])
            if node is None:
                raise RedisConnectionError(f"no node serves the slot of {keys[0]!r}")
            client, script = self._node(node.host, int(node.port))
            async with client.client() as conn:
                try:
                    await conn.ping()
                except (RedisConnectionError, OSError):
                    if attempt == 2:
                        raise
                    await self._refresh()
                    continue
                try:
                    await script(keys=keys, args=args, client=conn)
                except MovedError:  # the slot lives elsewhere now: nothing was run
                    if attempt == 2:
                        raise
                    await self._refresh()
                    continue
                await _replicated(conn, self._wait_replicas, self._timeout_s)
                return

    async def _refresh(self) -> None:
        await self._cluster.nodes_manager.initialize()  # the slot map again, from a node that answers

    async def ping(self) -> None:
        await self._cluster.ping(target_nodes=RedisCluster.PRIMARIES)

    async def close(self) -> None:
        await aclose(self._cluster)
        for client, _ in self._nodes.values():
            await aclose(client)
