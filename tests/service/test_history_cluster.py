"""The service against a real Redis Cluster (three masters started by the tests), found by asking the server: a
user's history and event are stored together in the user's slot, and the events spread over the masters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elcrec.model.events import CLUSTER, CLUSTER_SHARDS
from tests.support.failover import EventRounds
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.service import running_app, settings_for, wait_for

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
        assert db.keyslot(CLUSTER.history_key(user)) == db.keyslot(CLUSTER.stream_of(user))
    db.close()


async def test_a_master_killed_loses_no_acknowledged_event(store: Path, own_cluster: RedisClusterNodes) -> None:
    """Three masters with a replica each; events acknowledged only once a replica holds them (WAIT). A master is
    killed mid-stream; its replica takes over, and the killed node, restarted, becomes the new master's replica.
    Every event that got a 200 is there afterwards, in order; the others got a 503 that names no Redis internals,
    and the service answers again once the cluster has recovered."""
    users = [f"user-{n}" for n in range(30)]
    with own_cluster.client() as db:
        victim = db.get_node_from_key(CLUSTER.history_key(users[0]))
    assert victim is not None
    async with running_app(settings_for(store, redis_url=own_cluster.url, redis_wait_replicas=1)) as c:
        rounds = EventRounds(c, users)
        await rounds.send()
        heir = own_cluster.replica_of(int(victim.port))
        own_cluster.kill(int(victim.port))
        await rounds.send()  # the primary is dead: its users refused, the others served
        wait_for(lambda: own_cluster.role(heir) == "master" and own_cluster.healthy(), 30, "the replica to take over")
        # Back (empty: no persistence in these tests), it becomes the new master's replica: WAIT 1 can be met again.
        own_cluster.restart(int(victim.port))
        await rounds.until_all_acknowledged(own_cluster.healthy)
        answer = await c.post("/v1/recommend", json={"user_id": users[0], "k": 3})
    assert answer.status_code == 200
    with own_cluster.client() as db:
        histories = {user: db.lrange(CLUSTER.history_key(user), 0, -1) for user in users}
        events = [(f["user"], json.loads(f["items"])[0]) for stream in CLUSTER.streams() if db.exists(stream)
                  for _, f in db.xrange(stream)]
    rounds.check(events)
    for user in users:  # each history beside its events
        assert histories[user][-1] == [item for u, item in events if u == user][-1]
