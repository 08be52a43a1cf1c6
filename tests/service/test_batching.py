"""Micro-batching: concurrent requests share encoder calls and get the answers they would get alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from elcrec.model.artifact import load_artifact
from elcrec.service.bundle import build_bundle, pick_device
from elcrec.service.inference import run_batch
from elcrec.service.queries import Query
from tests.support.service import add_version, running_app, settings_for

pytestmark = pytest.mark.anyio

HISTORIES = [[f"i{(u * 7 + j) % 40 + 1}" for j in range(1 + u % 11)] for u in range(24)]


def batch_stats(client) -> tuple[float, float, float]:  # (batches, queries, batches of size <= 4)
    samples = {
        (s.name, s.labels.get("le")): s.value
        for m in client.resources.metrics.batch_size.collect()
        for s in m.samples
    }
    return (
        samples[("elcrec_batch_size_count", None)],
        samples[("elcrec_batch_size_sum", None)],
        samples[("elcrec_batch_size_bucket", "4.0")],
    )


async def test_concurrent_requests_share_encoder_calls_and_match_single_runs(store: Path) -> None:
    async with running_app(settings_for(store, batch_window_ms=20, answer_cache=0)) as c:
        alone = []
        for h in HISTORIES:
            alone.append((await c.post("/v1/recommend", json={"history": h, "k": 5})).json())
        before = batch_stats(c)
        together = await asyncio.gather(
            *(c.post("/v1/recommend", json={"history": h, "k": 5}) for h in HISTORIES)
        )
        after = batch_stats(c)
    assert before[0] == len(HISTORIES)  # sequential requests: one batch each
    assert after[1] - before[1] == len(HISTORIES)
    assert after[0] - before[0] < len(HISTORIES) / 2  # concurrent ones were batched
    for a, t in zip(alone, together, strict=True):
        t = t.json()
        assert [i["item_id"] for i in t["items"]] == [i["item_id"] for i in a["items"]]
        assert [i["score"] for i in t["items"]] == pytest.approx([i["score"] for i in a["items"]], abs=1e-5)
        assert t["intent"]["id"] == a["intent"]["id"]


async def test_batches_never_exceed_the_maximum_size(store: Path) -> None:
    async with running_app(settings_for(store, batch_window_ms=50, batch_max_size=4)) as c:
        results = await asyncio.gather(*(c.post("/v1/recommend", json={"history": h}) for h in HISTORIES))
        batches, queries, small = batch_stats(c)
    assert all(r.status_code == 200 for r in results)
    assert queries == len(HISTORIES) and small == batches and batches >= len(HISTORIES) / 4


@pytest.mark.parametrize("pooling", ["all", "real"])
def test_a_batch_gives_each_query_its_single_answer(tmp_path: Path, pooling: str) -> None:
    version = add_version(tmp_path / "s", pooling=pooling)
    bundle = build_bundle(version, pick_device("cpu"))
    queries = [Query([bundle.rows[i] for i in h], 5, frozenset(), 3) for h in HISTORIES]
    batched = run_batch(bundle, queries)
    for q, b in zip(queries, batched, strict=True):
        (single,) = run_batch(bundle, [q])
        assert b.rows == single.rows and b.intent_ids == single.intent_ids
        assert b.scores == pytest.approx(single.scores, abs=1e-5)
        assert b.intent_distances == pytest.approx(single.intent_distances, abs=1e-5)
    assert load_artifact(version).config.pooling == pooling
