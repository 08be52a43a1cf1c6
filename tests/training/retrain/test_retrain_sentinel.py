"""The retraining job through Redis Sentinel: after a failover it reads the events from the new primary."""

from __future__ import annotations

from pathlib import Path

import pytest

from elcrec.training.retrain import RetrainOptions, retrain
from tests.support.redis_sentinel import SentinelSetup
from tests.support.service import running_app, settings_for, wait_for

pytestmark = pytest.mark.anyio


async def test_the_job_follows_the_primary_the_sentinel_names(store: Path, base: Path, own_sentinel: SentinelSetup) -> None:
    async with running_app(settings_for(store, redis_url=own_sentinel.url, redis_wait_replicas=1)) as c:
        for i in range(8):
            r = await c.post(f"/v1/users/s-u{i}/events", json={"item_ids": ["s-sku0", str(1 + i)]})
            assert r.status_code == 200, r.text
    old, heir = own_sentinel.data_ports
    own_sentinel.kill(old)
    wait_for(lambda: own_sentinel.primary() == heir, 30, "the sentinel to promote the replica")
    options = RetrainOptions(store=store, base_data=base, redis_url=own_sentinel.url, device="cpu",
                             gate_tolerance=1.0, train_overrides={"epochs": 1})
    s = retrain(options, log=lambda _: None)
    assert (s.status, s.events["used"], s.events["new_users"]) == ("published", 8, 8)
    with own_sentinel.client() as db:
        assert db.get("elcrec:retrain:watermark") == s.watermark["after"]  # stored on the new primary
