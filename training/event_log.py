"""The Redis side of retraining: the service's event streams (model/events.py names them) and the job's watermark,
the id of the last event folded into the published version's data (of each stream, on a Redis Cluster)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from redis.exceptions import RedisError, ResponseError

from elcrec.model.events import EVENTS_STREAM, SINGLE, WATERMARK_KEY, Layout
from elcrec.model.redis_target import close, connect, connect_cluster, layout_of
from elcrec.training.retrain_errors import RetrainError, RetrainUnavailable

PAGE = 10_000  # stream entries per XRANGE call
TIMEOUT_S, CONNECT_TIMEOUT_S = 30, 5  # seconds: a page of XRANGE may be slow on a busy server; an unreachable one is given up soon


def stream_id_key(sid: str) -> tuple[int, int]:
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


def parse_mark(value: str, layout: Layout) -> dict[int, str]:
    """A watermark -> {shard: last stream id folded in}. One Redis: a stream id; a cluster: "s=id,s=id,..."."""
    if not layout.cluster:
        stream_id_key(value)
        return {0: value}
    marks: dict[int, str] = {}
    for part in value.split(",") if value else []:
        shard, _, sid = part.partition("=")
        if not shard.isdigit() or int(shard) >= layout.shards:
            raise ValueError(f"no shard {shard!r}")
        stream_id_key(sid)
        marks[int(shard)] = sid
    return marks


def format_mark(marks: dict[int, str], layout: Layout) -> str:
    if not layout.cluster:
        return marks[0]
    return ",".join(f"{s}={marks[s]}" for s in sorted(marks))


class EventLog:
    """The service's event streams and this job's watermark, behind a small typed class. On a Redis Cluster the
    events are spread over several streams (model/events.py Layout); a watermark then holds each stream's mark."""

    def __init__(self, url: str, key: str = WATERMARK_KEY) -> None:
        try:
            self._redis: Any = connect(url, TIMEOUT_S, CONNECT_TIMEOUT_S)
        except ValueError as exc:
            raise RetrainError(f"--redis {url!r} is not a Redis URL: {exc}") from exc
        self.url, self.key = url, key
        self.layout = SINGLE  # found by ping()

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ResponseError as exc:  # Redis answered: the data is wrong (e.g. the key is not a stream)
            raise RetrainError(f"Redis at {self.url} refused {what}: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise RetrainUnavailable(
                f"Redis at {self.url} failed while {what}: {type(exc).__name__}: {exc}"
            ) from exc

    def ping(self) -> None:
        """Reach Redis and learn whether it is a cluster (the keys differ: model/events.py)."""
        self._call("connecting", self._redis.ping)
        try:
            self.layout = layout_of(self._redis)
        except (RedisError, OSError) as exc:
            raise RetrainUnavailable(f"Redis at {self.url} failed while connecting: {exc}") from exc
        if self.layout.cluster:
            single = self._redis
            self._redis = self._call("connecting to the cluster",
                                     lambda: connect_cluster(self.url, TIMEOUT_S, CONNECT_TIMEOUT_S))
            close(single)

    @property
    def streams(self) -> str:
        """The streams' names, for messages."""
        return EVENTS_STREAM if not self.layout.cluster else f"the {self.layout.shards} event streams"

    def watermark(self) -> str | None:
        value = self._call("reading the watermark", lambda: self._redis.get(self.key))
        if value is not None:
            try:
                parse_mark(value, self.layout)
            except ValueError:
                expected = "the cluster's shard=id,... list" if self.layout.cluster else "a stream id"
                raise RetrainError(
                    f"Redis key {self.key} holds {value!r}, not {expected}; delete it to rebuild from BASE_FILE"
                ) from None
        return value

    def snapshot(self) -> tuple[str | None, int | None]:
        """(the newest entry ever added to each stream, as a watermark; entries ever added to all), read at once.
        The count needs Redis >= 7 (else None); with it, events trimmed away before being read are counted."""
        newest: dict[int, str] = {}
        added: int | None = 0
        for shard, stream in enumerate(self.layout.streams()):
            if not self._call("reading the stream", functools.partial(self._redis.exists, stream)):
                continue
            info = self._call("reading the stream", functools.partial(self._redis.xinfo_stream, stream))
            newest[shard] = str(info["last-generated-id"])
            count = info.get("entries-added")
            added = None if added is None or count is None else added + int(count)
        if not newest:
            return None, 0
        return format_mark(newest, self.layout), added

    def has_new(self, mark: str | None, upto: str) -> bool:
        """Whether `upto` (a snapshot) holds entries after `mark`."""
        if mark is None:
            return True
        before = parse_mark(mark, self.layout)
        return any(s not in before or stream_id_key(sid) > stream_id_key(before[s])
                   for s, sid in parse_mark(upto, self.layout).items())

    def read(self, after: str | None, upto: str) -> Iterator[tuple[str, dict[str, str]]]:
        """Entries after `after` up to `upto`, stream by stream, oldest first in each (a user's events are all in
        one stream, so each user's stay in order), a page at a time."""
        before = parse_mark(after, self.layout) if after else {}
        for shard, last in parse_mark(upto, self.layout).items():
            yield from self._read_stream(self.layout.stream(shard), before.get(shard), last)

    def _read_stream(self, stream: str, after: str | None, upto: str) -> Iterator[tuple[str, dict[str, str]]]:
        start = f"({after}" if after else "-"
        while True:
            page = self._call(
                "reading the stream",
                lambda start=start: self._redis.xrange(stream, min=start, max=upto, count=PAGE),  # type: ignore[misc]
            )
            yield from page
            if len(page) < PAGE:
                return
            start = f"({page[-1][0]}"

    def set_watermark(self, mark: str) -> None:
        self._call("storing the watermark", lambda: self._redis.set(self.key, mark))

    def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            close(self._redis)

