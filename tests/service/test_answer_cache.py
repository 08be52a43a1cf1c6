"""The answer cache: a repeat of a query is answered without the encoder, exactly as computed; anything that changes
the answer (the history, k, exclusions, intent options, the version) changes the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest

from elcrec.service.answer_cache import AnswerCache, key_of
from elcrec.service.queries import NOT_IN_KEY, Answer, Query
from tests.support.service import AppClient, add_version, running_app, settings_for

pytestmark = pytest.mark.anyio


def answer(row: int) -> Answer:
    return Answer([row], [1.0], [0], [0.5], [0.9], [], 0)


def test_the_key_follows_everything_that_changes_an_answer() -> None:
    base = Query([3, 1, 2], 10, frozenset([1, 2, 3]), 4)
    same = Query([3, 1, 2], 10, frozenset([3, 2, 1]), 4)
    others = [
        Query([1, 3, 2], 10, frozenset([1, 2, 3]), 4),  # order matters to a sequence model
        Query([3, 1, 2, 2], 10, frozenset([1, 2, 3]), 4),
        Query([3, 1, 2], 5, frozenset([1, 2, 3]), 4),
        Query([3, 1, 2], 10, frozenset(), 4),  # exclude_seen false
        Query([3, 1, 2], 10, frozenset([1, 2]), 4),
        Query([3, 1, 2], 10, frozenset([1, 2, 3]), 2),
        Query([3, 1, 2], 10, frozenset([1, 2, 3]), 4, steer=0),
        Query([3, 1, 2], 10, frozenset([1, 2, 3]), 4, steer=1),
        Query([3, 1, 2], 10, frozenset([1, 2, 3]), 4, diversify=True),
        Query([3, 1, 2], 10, frozenset([1, 2, 3]), 4, steer=0, steer_weight=0.5),
    ]
    keys = {key_of(q) for q in others}
    assert key_of(base) == key_of(same)
    assert len(keys) == len(others) and key_of(base) not in keys


def test_a_field_added_to_the_query_is_in_the_key_unless_declared_not_to_be() -> None:
    # What a new request option does: a field on Query. Two queries that differ only there must not share an answer.
    Explored = dataclasses.make_dataclass(
        "Explored", [("explore", float, dataclasses.field(default=0.0)),
                     ("trace_id", str, dataclasses.field(default="", metadata={NOT_IN_KEY: True}))],
        bases=(Query,), frozen=True, slots=True)
    plain = Explored([3, 1, 2], 10, frozenset([1, 2, 3]), 4)
    explored = Explored([3, 1, 2], 10, frozenset([1, 2, 3]), 4, explore=0.5)
    traced = Explored([3, 1, 2], 10, frozenset([1, 2, 3]), 4, trace_id="abc")
    assert key_of(plain) != key_of(explored)
    assert key_of(plain) == key_of(traced)  # declared not to change the answer
    assert key_of(plain)[:-1] == key_of(Query([3, 1, 2], 10, frozenset([1, 2, 3]), 4))


def test_least_recently_used_answers_go_first_and_capacity_zero_keeps_none() -> None:
    cache = AnswerCache(2)
    a, b, c = (key_of(Query([r], 1, frozenset(), 1)) for r in (1, 2, 3))
    cache.put(a, answer(1))
    cache.put(b, answer(2))
    assert cache.get(a) == answer(1)  # a is now the most recent
    cache.put(c, answer(3))
    assert cache.get(b) is None and cache.get(a) == answer(1) and cache.get(c) == answer(3) and len(cache) == 2
    off = AnswerCache(0)
    off.put(a, answer(1))
    assert off.get(a) is None and len(off) == 0


def cache_counts(client: AppClient) -> dict[str, float]:
    return {
        s.labels["result"]: s.value
        for m in client.resources.metrics.answer_cache.collect()
        for s in m.samples
        if s.name == "elcrec_answer_cache_total"
    }


def batches(client: AppClient) -> float:
    return next(
        s.value for m in client.resources.metrics.batch_size.collect() for s in m.samples
        if s.name == "elcrec_batch_size_count"
    )


async def test_a_repeat_request_is_answered_from_the_cache_exactly_as_computed(store: Path) -> None:
    body = {"user_id": "u1", "k": 5}
    async with running_app(settings_for(store, answer_cache=0)) as plain:
        await plain.post("/v1/users/u1/events", json={"item_ids": ["i1", "i2", "i3"]})
        expected = (await plain.post("/v1/recommend", json=body)).json()
    async with running_app(settings_for(store)) as c:
        await c.post("/v1/users/u1/events", json={"item_ids": ["i1", "i2", "i3"]})
        first = (await c.post("/v1/recommend", json=body)).json()
        encoder_calls = batches(c)
        again = [(await c.post("/v1/recommend", json=body)).json() for _ in range(3)]
        assert batches(c) == encoder_calls  # no encoder call for the repeats
        assert cache_counts(c) == {"miss": 1.0, "hit": 3.0}
        # A new event changes the history, so the next request is computed afresh: nothing to invalidate.
        await c.post("/v1/users/u1/events", json={"item_ids": ["i4"]})
        after_event = (await c.post("/v1/recommend", json=body)).json()
        assert cache_counts(c)["miss"] == 2.0 and batches(c) == encoder_calls + 1
        # Other options of the same user are other answers.
        steered = (await c.post("/v1/recommend", json={**body, "intent": 2})).json()
        assert cache_counts(c)["miss"] == 3.0
    assert first == expected and all(a == first for a in again)
    assert after_event["items"] != first["items"] or after_event["intent"] != first["intent"]
    assert "i4" not in [i["item_id"] for i in after_event["items"]]  # seen items still excluded
    assert steered["items"] != after_event["items"]


async def test_each_version_has_its_own_cache(store: Path) -> None:
    body = {"history": ["i1", "i2"], "k": 5}
    async with running_app(settings_for(store)) as c:
        old = (await c.post("/v1/recommend", json=body)).json()
        add_version(store, seed=1)
        for _ in range(100):
            new = (await c.post("/v1/recommend", json=body)).json()
            if new["model_version"] == "v0002":
                break
            await anyio.sleep(0.05)
        assert new["model_version"] == "v0002" and new["items"] != old["items"]
        assert len(c.resources.holder.bundle.answers) == 1
