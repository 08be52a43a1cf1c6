"""Integration with a real redis-server: key layout, the event stream, capping, and outages."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest
import redis

from tests.support.service import MAX_LEN, AppClient, RedisServer, running_app, settings_for

pytestmark = pytest.mark.anyio


def sync_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)


async def test_events_go_to_the_history_list_and_the_stream(store: Path, redis_url: str) -> None:
    async with running_app(settings_for(store, redis_url=redis_url)) as c:
        r = await c.post("/v1/users/alice/events", json={"item_ids": ["i4", "i8", "future-item"]})
        assert r.status_code == 200 and r.json()["unknown_items"] == ["future-item"]
        await c.post("/v1/users/alice/events", json={"item_ids": ["i15"]})
        r = await c.post("/v1/recommend", json={"user_id": "alice", "k": 5})
        memory_twin = await _same_in_memory(store, [["i4", "i8", "future-item"], ["i15"]])
        assert r.json()["items"] == memory_twin["items"]
        assert (await c.get("/health/ready")).json()["history"] == {"backend": "redis", "ok": True}
    db = sync_redis(redis_url)
    assert db.lrange("elcrec:hist:alice", 0, -1) == ["i4", "i8", "future-item", "i15"]
    entries = db.xrange("elcrec:events")
    assert [fields for _, fields in entries] == [
        {"user": "alice", "items": json.dumps(["i4", "i8", "future-item"])},
        {"user": "alice", "items": json.dumps(["i15"])},
    ]


async def _same_in_memory(store: Path, events: list[list[str]]) -> dict:
    async with running_app(settings_for(store)) as c:
        for items in events:
            await c.post("/v1/users/alice/events", json={"item_ids": items})
        return (await c.post("/v1/recommend", json={"user_id": "alice", "k": 5})).json()


async def test_history_keeps_the_last_T_items(store: Path, redis_url: str) -> None:
    items = [f"i{r}" for r in range(1, 21)]
    async with running_app(settings_for(store, redis_url=redis_url)) as c:
        await c.post("/v1/users/bob/events", json={"item_ids": items[:12]})
        await c.post("/v1/users/bob/events", json={"item_ids": items[12:]})
    db = sync_redis(redis_url)
    assert db.lrange("elcrec:hist:bob", 0, -1) == items[-MAX_LEN:]
    assert db.xlen("elcrec:events") == 2


async def test_user_ids_only_address_their_own_history_key(store: Path, redis_url: str) -> None:
    db = sync_redis(redis_url)
    db.rpush("elcrec:events-copy", "i1")
    db.rpush("secret", "i1")
    async with running_app(settings_for(store, redis_url=redis_url)) as c:
        for user in ("secret", "elcrec:events", "../secret", "*"):
            r = await c.post("/v1/recommend", json={"user_id": user})
            assert r.status_code == 200 and r.json()["strategy"] == "popular"
        await c.post("/v1/users/*/events", json={"item_ids": ["i2"]})
    assert db.lrange("elcrec:hist:*", 0, -1) == ["i2"] and db.lrange("secret", 0, -1) == ["i1"]


async def test_an_event_redis_refuses_is_not_acknowledged(store: Path, redis_url: str) -> None:
    sync_redis(redis_url).set("elcrec:events", "not a stream")  # XADD fails inside the transaction
    async with running_app(settings_for(store, redis_url=redis_url)) as c:
        r = await c.post("/v1/users/carol/events", json={"item_ids": ["i1"]})
    # Redis's error text goes to the log, not to the client; neither the history nor the event is stored
    assert r.status_code == 503 and r.json()["detail"] == "the history store (Redis) is unavailable"
    assert sync_redis(redis_url).lrange("elcrec:hist:carol", 0, -1) == []


async def _timed(c: AppClient, method: str, path: str, **kw) -> tuple[int, float, dict]:
    start = time.perf_counter()
    r = await c.request(method, path, **kw)
    return r.status_code, time.perf_counter() - start, r.json()


async def test_redis_outage_degrades_and_recovers(store: Path, own_redis: RedisServer) -> None:
    async with running_app(settings_for(store, redis_url=own_redis.url, redis_timeout_s=0.5)) as c:
        assert (await c.post("/v1/users/dan/events", json={"item_ids": ["i3"]})).status_code == 200
        own_redis.stop()
        status, took, body = await _timed(c, "POST", "/v1/recommend", json={"history": ["i1", "i2"], "k": 3})
        assert status == 200 and len(body["items"]) == 3  # carries its own history: no Redis needed
        for method, path, kw in [
            ("POST", "/v1/recommend", {"json": {"user_id": "dan"}}),
            ("POST", "/v1/recommend", {"json": {"user_id": "dan", "history": ["i1"]}}),
            ("POST", "/v1/users/dan/events", {"json": {"item_ids": ["i5"]}}),
            ("GET", "/v1/users/dan/intent", {}),
        ]:
            status, took, body = await _timed(c, method, path, **kw)
            assert status == 503 and "Redis" in body["detail"], (path, body)
            assert took < 2.5
        ready = await c.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["history"]["ok"] is False
        assert ready.json()["model"]["loaded"] is True
        assert 'elcrec_redis_errors_total{operation="append"}' in (await c.get("/metrics")).text
        own_redis.start()  # same port, empty: the service reconnects by itself
        assert (await c.get("/health/ready")).status_code == 200
        assert (await c.post("/v1/users/dan/events", json={"item_ids": ["i5"]})).status_code == 200
        r = await c.post("/v1/recommend", json={"user_id": "dan", "k": 3})
        assert r.status_code == 200 and r.json()["strategy"] == "model"
    assert sync_redis(own_redis.url).lrange("elcrec:hist:dan", 0, -1) == ["i5"]


async def test_a_hanging_redis_times_out_instead_of_hanging_requests(
    store: Path, own_redis: RedisServer
) -> None:
    assert own_redis.proc is not None
    async with running_app(settings_for(store, redis_url=own_redis.url, redis_timeout_s=0.3)) as c:
        assert (await c.post("/v1/users/fay/events", json={"item_ids": ["i3"]})).status_code == 200
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            status, took, body = await _timed(c, "POST", "/v1/recommend", json={"user_id": "fay"})
            assert status == 503 and took < 2.0
            status, took, _ = await _timed(c, "POST", "/v1/recommend", json={"history": ["i3"]})
            assert status == 200 and took < 1.0
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.1)
        r = await c.post("/v1/recommend", json={"user_id": "fay"})
        assert r.status_code == 200 and r.json()["strategy"] == "model"
