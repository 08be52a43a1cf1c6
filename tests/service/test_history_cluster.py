"""The service against a real Redis Cluster (three masters started by the tests), found by asking the server: a
user's history and event are stored together in the user's slot, and the events spread over the masters."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.events import CLUSTER, CLUSTER_SHARDS
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.service import running_app, settings_for

pytestmark = pytest.mark.anyio

USERS = [f"user-{n}" for n in range(60)] + ["{brace}", "a}b{c"]


async def test_histories_and_events_on_a_cluster(
    store: Path, cluster_url: str, redis_cluster: RedisClusterNodes
) -> None:
    async with running_app(settings_for(store, redis_url=cluster_url)) as c:
        ready = (await c.get("/health/ready")).json()
        for n, user in enumerate(USERS):
            r = await c.post(f"/v1/users/{user}/events", json={"item_ids": [f"i{1 + n % 40}", f"i{1 + (n + 7) % 40}"]})
            assert r.status_code == 200, r.text
        await c.post(f"/v1/users/{USERS[0]}/events", json={"item_ids": ["i9"]})
        answers = [(await c.post("/v1/recommend", json={"user_id": u, "k": 3})).json() for u in USERS[:5]]
    assert ready["ready"] and ready["history"] == {"backend": "redis-cluster", "ok": True}
    assert all(a["strategy"] == "model" and len(a["items"]) == 3 for a in answers)
    keys = redis_cluster.keys_by_node()
    assert len(keys) == 3 and all(any(k.endswith(":events") for k in held) for held in keys.values())  # spread
    db = redis_cluster.client()
    assert db.lrange(CLUSTER.history_key(USERS[0]), 0, -1) == ["i1", "i8", "i9"]
    streams = [s for s in CLUSTER.streams() if db.exists(s)]
    assert sum(db.xlen(s) for s in streams) == len(USERS) + 1 and len(streams) == CLUSTER_SHARDS
    for user in USERS:  # each user's history beside the stream that holds the user's events
        node = redis_cluster.client().keyslot(CLUSTER.history_key(user))
        assert node == db.keyslot(CLUSTER.stream_of(user))
