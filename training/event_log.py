"""The Redis side of retraining: the service's events stream (model/events.py names it) and the job's watermark,
the id of the last event folded into the published version's data."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import redis
from redis.exceptions import RedisError, ResponseError

from model.events import EVENTS_STREAM, WATERMARK_KEY
from training.retrain_errors import RetrainError, RetrainUnavailable

PAGE = 10_000  # stream entries per XRANGE call


def stream_id_key(sid: str) -> tuple[int, int]:
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


class EventLog:
    """The service's event stream and this job's watermark, behind a small typed class."""

    def __init__(self, url: str, stream: str = EVENTS_STREAM, key: str = WATERMARK_KEY) -> None:
        try:
            self._redis = redis.Redis.from_url(
                url, decode_responses=True, socket_timeout=30, socket_connect_timeout=5
            )
        except ValueError as exc:
            raise RetrainError(f"--redis {url!r} is not a Redis URL: {exc}") from exc
        self.url, self.stream, self.key = url, stream, key

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
        self._call("connecting", self._redis.ping)

    def watermark(self) -> str | None:
        value = self._call("reading the watermark", lambda: self._redis.get(self.key))
        if value is not None:
            try:
                stream_id_key(value)
            except ValueError:
                raise RetrainError(
                    f"Redis key {self.key} holds {value!r}, not a stream id; "
                    "delete it to rebuild from BASE_FILE"
                ) from None
        return value

    def snapshot(self) -> tuple[str | None, int | None]:
        """(id of the newest entry ever added, number of entries ever added), read at one instant.
        The count needs Redis >= 7 (else None); with it, events trimmed away before being read are counted."""
        if not self._call("reading the stream", lambda: self._redis.exists(self.stream)):
            return None, 0
        info = self._call("reading the stream", lambda: self._redis.xinfo_stream(self.stream))
        added = info.get("entries-added")
        return str(info["last-generated-id"]), None if added is None else int(added)

    def read(self, after: str | None, upto: str) -> Iterator[tuple[str, dict[str, str]]]:
        """Entries with after < id <= upto, oldest first, a page at a time."""
        start = f"({after}" if after else "-"
        while True:
            page = self._call(
                "reading the stream",
                lambda start=start: self._redis.xrange(self.stream, min=start, max=upto, count=PAGE),  # type: ignore[misc]
            )
            yield from page
            if len(page) < PAGE:
                return
            start = f"({page[-1][0]}"

    def set_watermark(self, sid: str) -> None:
        self._call("storing the watermark", lambda: self._redis.set(self.key, sid))

    def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            self._redis.close()
