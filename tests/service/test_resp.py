"""The pipelined RESP reader of the history reads, against a real redis-server."""

from __future__ import annotations

import hiredis
import pytest

from elcrec.service.resp import PipelinedReader, encode
from tests.support.service import RedisServer

pytestmark = pytest.mark.anyio


class PasswordRedis(RedisServer):
    def options(self) -> list[str]:
        return [*super().options(), "--requirepass", "s3cret:/@"]

    @property
    def url(self) -> str:
        return f"redis://:s3cret%3A%2F%40@127.0.0.1:{self.port}/3"

    def _ours(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None
        try:
            return self._command(b"PING").startswith(b"-NOAUTH")
        except OSError:  # not listening yet
            return False


def test_encode_is_resp() -> None:
    assert encode("LRANGE", "k", "0", "-1") == b"*4\r\n$6\r\nLRANGE\r\n$1\r\nk\r\n$1\r\n0\r\n$2\r\n-1\r\n"
    assert encode("SET", "ü") == b"*2\r\n$3\r\nSET\r\n$2\r\n\xc3\xbc\r\n"


def test_only_plain_redis_urls() -> None:
    assert PipelinedReader.supports("redis://localhost:6379/0")
    assert not PipelinedReader.supports("rediss://localhost:6379/0")
    assert not PipelinedReader.supports("unix:///tmp/redis.sock")
    reader = PipelinedReader("redis://u%40x:p%3Aw@h:7000?db=5", 1.0)
    assert (reader.host, reader.port, reader.username, reader.password, reader.db) == ("h", 7000, "u@x", "p:w", 5)


async def test_pipelined_replies_in_order_and_errors_as_values(redis_url: str) -> None:
    reader = PipelinedReader(redis_url, 1.0)
    client = RedisServer(int(redis_url.split(":")[2].split("/")[0])).client()
    client.rpush("a", "1", "2", "3")
    client.set("s", "x")
    replies = await reader.run(
        [("LRANGE", "a", "0", "-1"), ("LRANGE", "none", "0", "-1"), ("LRANGE", "s", "0", "-1")]
    )
    assert replies[0] == ["1", "2", "3"] and replies[1] == []
    assert isinstance(replies[2], hiredis.ReplyError) and "WRONGTYPE" in str(replies[2])
    big = [str(i) * 20 for i in range(5000)]  # a reply larger than one read
    client.rpush("big", *big)
    assert (await reader.run([("LRANGE", "big", "0", "-1")] * 3)) == [big] * 3
    reader.close()


async def test_password_and_db_from_the_url() -> None:
    server = PasswordRedis()
    server.start()
    try:
        reader = PipelinedReader(server.url, 1.0)
        assert await reader.run([("SET", "k", "v"), ("GET", "k")]) == ["OK", "v"]
        assert "db=3" in (await reader.run([("CLIENT", "INFO")]))[0]
        wrong = PipelinedReader(server.url.replace("s3cret", "wrong"), 1.0)
        with pytest.raises(ConnectionError, match="refused"):
            await wrong.run([("GET", "k")])
        reader.close()
    finally:
        server.stop()


async def test_outage_fails_fast_then_reconnects(own_redis: RedisServer) -> None:
    reader = PipelinedReader(own_redis.url, 0.5)
    assert await reader.run([("PING",)]) == ["PONG"]
    own_redis.stop()
    with pytest.raises((OSError, TimeoutError)):
        await reader.run([("PING",)])
    with pytest.raises((OSError, TimeoutError)):  # still down: a fresh connect fails too
        await reader.run([("PING",)])
    own_redis.start()
    assert await reader.run([("PING",)]) == ["PONG"]
    reader.close()
