"""The retraining job against a real Redis Cluster: it reads the events the service wrote over every shard's
stream, keeps one mark per stream, and folds each event in exactly once across runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from elcrec.model.events import CLUSTER, WATERMARK_KEY
from elcrec.training.event_log import parse_mark
from elcrec.training.retrain import RetrainOptions, retrain
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.service import running_app, settings_for

pytestmark = pytest.mark.anyio


async def write(url: str, store: Path, events: list[tuple[str, list[str]]]) -> None:
    """Through the service, as in production: it picks the keys."""
    async with running_app(settings_for(store, redis_url=url)) as c:
        for user, items in events:
            r = await c.post(f"/v1/users/{user}/events", json={"item_ids": items})
            assert r.status_code == 200, r.text


def run(store: Path, base: Path, url: str):  # noqa: ANN201
    options = RetrainOptions(store=store, base_data=base, redis_url=url, device="cpu", gate_tolerance=1.0,
                             train_overrides={"epochs": 1})
    return retrain(options, log=lambda _: None)


async def test_every_shard_is_read_and_marked(
    store: Path, base: Path, cluster_url: str, redis_cluster: RedisClusterNodes
) -> None:
    first = [(f"c-u{i}", ["c-sku0", str(1 + i), str(10 + i)]) for i in range(12)] + [("1", ["c-sku1"])]
    await write(cluster_url, store, first)
    s = run(store, base, cluster_url)
    assert (s.status, s.published) == ("published", "v0002"), s.message
    assert s.events["used"] == 13 and s.events["new_users"] == 12 and s.events["new_items"] == 2
    assert s.events["lost_before_read"] == 0
    with redis_cluster.client() as db:
        mark = db.get(WATERMARK_KEY)
    assert mark == s.watermark["after"] and len(mark.split(",")) > 3  # one mark per stream that has events

    assert run(store, base, cluster_url).status == "no_new_events"  # nothing read twice

    await write(cluster_url, store, [("c-u3", ["c-sku2"])])  # one more event: one stream moves on
    s = run(store, base, cluster_url)
    assert (s.status, s.events["used"], s.events["new_items"]) == ("published", 1, 1)
    before, after = (parse_mark(m, CLUSTER) for m in (mark, s.watermark["after"]))
    assert after.keys() == before.keys() and sum(after[k] != before[k] for k in after) == 1



async def test_a_cluster_behind_a_password(store: Path, base: Path) -> None:
    """The URL's password reaches every node: the service's own write connections and the job's cluster client."""
    cluster = RedisClusterNodes(masters=3, password="s3cret pass")
    cluster.start()
    try:
        url = cluster.url.replace("s3cret pass", "s3cret%20pass")  # as it is written in a URL
        await write(url, store, [(f"p-u{i}", ["p-sku0", str(1 + i)]) for i in range(8)])
        async with running_app(settings_for(store, redis_url=url)) as c:
            ready = (await c.get("/health/ready")).json()
            answer = (await c.post("/v1/recommend", json={"user_id": "p-u1", "k": 3})).json()
        s = run(store, base, url)
    finally:
        cluster.stop()
    assert ready["history"] == {"backend": "redis-cluster", "ok": True} and answer["strategy"] == "model"
    assert (s.status, s.events["used"]) == ("published", 8)
