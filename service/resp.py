"""A pipelined Redis connection for the hot reads: commands in RESP, replies parsed by hiredis (C).

redis-py's asyncio client spends several times more CPU on a pipeline (connection pool, command objects,
per-reply callbacks) than writing the commands ourselves and parsing with hiredis, and the history read is on every
recommendation (measured: docs/SERVING.md, *The path of a recommendation*, python -m bench.redis_reads).
Writes (MULTI/EXEC with the event stream) stay with redis-py.

Only plain `redis://` URLs are read here (host, port, db, user and password); for `rediss://` or unix sockets
`RedisHistory` keeps using redis-py (`PipelinedReader.supports`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis


def encode(*args: str | bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class PipelinedReader:
    """One connection, opened on first use and again after any failure. `run` writes a list of commands at
    once and returns their replies in order (a Redis error reply is returned as a `hiredis.ReplyError`).
    Connection failures and timeouts raise OSError / TimeoutError and close the connection. Not for concurrent
    callers: one task drives it."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"PipelinedReader reads redis:// URLs only, got {parts.scheme}://")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        db = parts.path.lstrip("/") or parse_qs(parts.query).get("db", ["0"])[0]
        self.db = int(db)
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")

    @staticmethod
    def supports(url: str) -> bool:
        try:
            PipelinedReader(url, 1.0)
        except ValueError:
            return False
        return True

    async def _connect(self) -> None:
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout_s
        )
        setup: list[tuple[str, ...]] = []
        if self.password is not None:
            setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            setup.append(("SELECT", str(self.db)))
        if setup:
            for reply in await self._exchange(setup):
                if isinstance(reply, hiredis.ReplyError):
                    raise ConnectionError(f"Redis refused the connection set-up: {reply}")

    async def run(self, commands: Sequence[Sequence[str]]) -> list[Any]:
        """The replies to `commands`. Meant for reads: a connection found dead (Redis restarted or dropped it since
        the last call) is replaced and the commands sent again, once."""
        reused = self._writer is not None
        try:
            return await self._run_once(commands)
        except (OSError, hiredis.ProtocolError):
            if not reused:
                raise
        return await self._run_once(commands)  # on a new connection; a second failure is the caller's

    async def _run_once(self, commands: Sequence[Sequence[str]]) -> list[Any]:
        try:
            if self._writer is None:
                await self._connect()
            return await self._exchange(commands)
        except BaseException:
            self.close()  # the stream may hold half a reply: never reuse it
            raise

    async def _exchange(self, commands: Sequence[Sequence[str]]) -> list[Any]:
        assert self._reader is not None and self._writer is not None
        self._writer.write(b"".join(encode(*cmd) for cmd in commands))
        replies: list[Any] = []
        async with asyncio.timeout(self.timeout_s):
            while len(replies) < len(commands):
                reply = self._parser.gets()
                if reply is False:  # incomplete: read more
                    data = await self._reader.read(1 << 16)
                    if not data:
                        raise ConnectionResetError("Redis closed the connection")
                    self._parser.feed(data)
                else:
                    replies.append(reply)
        return replies

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._reader = self._writer = None
