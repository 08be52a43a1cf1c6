"""User histories and the event stream: Redis when configured, else a store inside this process.

Redis layout (the retraining job reads it):
    elcrec:hist:{user_id}   list of item ids, oldest first, capped to the most recent T
    elcrec:events           stream; entry fields `user` (str) and `items` (JSON array of str)
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from typing import Protocol, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from service.metrics import Metrics

HISTORY_PREFIX = "elcrec:hist:"
EVENTS_STREAM = "elcrec:events"


class HistoryUnavailable(Exception):
    """The history store cannot be reached; nothing was read or stored."""


def history_key(user_id: str) -> str:
    # User ids are validated (printable, no whitespace) and only ever suffix this fixed prefix.
    return HISTORY_PREFIX + user_id


class HistoryStore(Protocol):
    backend: str

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
    backend = "redis"

    def __init__(
        self,
        url: str,
        timeout_s: float,
        max_connections: int,
        metrics: Metrics,
        stream_maxlen: int | None = None,
    ) -> None:
        # One pool for the process. Short socket timeouts and a single quick retry: an outage must
        # turn into a 503 within about a second, never into a hanging request.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
        self._redis = Redis.from_pool(pool)
        self._metrics = metrics
        self._stream_maxlen = stream_maxlen

    def _failed(self, operation: str, exc: Exception) -> HistoryUnavailable:
        self._metrics.redis_errors.labels(operation).inc()
        return HistoryUnavailable(f"the history store (Redis) is unavailable: {type(exc).__name__}: {exc}")

    async def get(self, user_id: str) -> list[str]:
        try:
            return cast(list[str], await self._redis.lrange(history_key(user_id), 0, -1))  # decode_responses
        except (RedisError, OSError) as exc:
            raise self._failed("read", exc) from exc

    async def append(self, user_id: str, items: list[str], cap: int) -> None:
        key = history_key(user_id)
        try:
            # MULTI/EXEC: the history and the event are stored together or not at all.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *items)
                pipe.ltrim(key, -cap, -1)
                pipe.xadd(
                    EVENTS_STREAM,
                    {"user": user_id, "items": json.dumps(items)},
                    maxlen=self._stream_maxlen,
                    approximate=True,
                )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failed("append", exc) from exc

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise self._failed("ping", exc) from exc

    async def close(self) -> None:
        await self._redis.aclose()
