"""The service against Redis Sentinel (a primary, a replica and a sentinel started by the tests): it follows the
primary the sentinel names, through a failover, losing no acknowledged event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elcrec.model.events import EVENTS_STREAM, history_key
from tests.support.failover import EventRounds
from tests.support.redis_sentinel import SentinelSetup
from tests.support.service import running_app, settings_for, wait_for

pytestmark = pytest.mark.anyio


async def test_the_primary_killed_loses_no_acknowledged_event(store: Path, own_sentinel: SentinelSetup) -> None:
    users = [f"user-{n}" for n in range(10)]
    old, heir = own_sentinel.data_ports
    async with running_app(settings_for(store, redis_url=own_sentinel.url, redis_wait_replicas=1)) as c:
        ready = (await c.get("/health/ready")).json()
        rounds = EventRounds(c, users)
        await rounds.send()
        own_sentinel.kill(old)
        await rounds.send()  # no primary: every event refused
        wait_for(lambda: own_sentinel.primary() == heir, 30, "the sentinel to promote the replica")
        own_sentinel.restart(old)  # back as the new primary's replica: WAIT 1 can be met again
        await rounds.until_all_acknowledged(lambda: own_sentinel.synced(old))
        await c.post(f"/v1/users/{users[0]}/events", json={"item_ids": ["i1", "i2"]})  # items the model knows
        answer = await c.post("/v1/recommend", json={"user_id": users[0], "k": 3})
    assert ready["ready"] and ready["history"]["backend"] == "redis"
    assert answer.status_code == 200 and answer.json()["strategy"] == "model"
    with own_sentinel.client() as db:
        events = [(f["user"], json.loads(f["items"])[0]) for _, f in db.xrange(EVENTS_STREAM)]
        last = {user: db.lrange(history_key(user), 0, -1)[-1] for user in users[1:]}
    rounds.check(events)
    assert all(last[user] == [i for u, i in events if u == user][-1] for user in users[1:])
