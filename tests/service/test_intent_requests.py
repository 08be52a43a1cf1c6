"""Recommendations towards an intent ("intent": ID) and spread over the user's intents ("diversify": true)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from elcrec.model.artifact import load_artifact
from elcrec.service.inference import interleave
from tests.support.service import add_version, running_app, settings_for

pytestmark = pytest.mark.anyio
HISTORY = ["i3", "i7", "i2", "i9", "i11"]


def test_interleave_gives_places_in_proportion_to_the_weights():
    lists = [([1, 2, 3, 4, 5, 6, 7], [0.0] * 7, 0), ([11, 12, 13, 14], [0.0] * 4, 1), ([21, 22], [0.0] * 2, 2)]
    rows, _, _, excluded = interleave(lists, [0.6, 0.3, 0.1], 10)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 11, 12, 13, 21] and excluded == 2
    assert rows[:3] == [1, 2, 11]  # each list keeps its own order
    # an item in two lists is taken once; a list that runs dry leaves its places to the others
    rows, _, _, _ = interleave([([1, 2, 3], [0.0] * 3, 0), ([1, 9], [0.0] * 2, 0)], [0.5, 0.5], 4)
    assert rows == [1, 9, 2, 3]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    add_version(tmp_path / "s", intent_mean_state=[0.05] * 64)
    return tmp_path / "s"


def _characteristic(store: Path, intent: int, items: list[str]) -> float:
    model = load_artifact(store).model
    direction = F.normalize(F.normalize(model.intent_centers[intent], dim=-1) - 0.05, dim=-1)
    rows = torch.tensor([int(i[1:]) for i in items])
    return float((model.item_table()[rows] @ direction).mean().detach())


async def test_intent_moves_the_list_towards_the_intent(store: Path) -> None:
    async with running_app(settings_for(store)) as c:
        plain = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 8})).json()
        own = plain["intent"]["id"]
        other = next(i for i in range(4) if i != own)
        steered = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 8, "intent": other})).json()
        plain_ids = [it["item_id"] for it in plain["items"]]
        steered_ids = [it["item_id"] for it in steered["items"]]
        assert steered["strategy"] == "model" and steered_ids != plain_ids and not set(steered_ids) & set(HISTORY)
        assert _characteristic(store, other, steered_ids) > _characteristic(store, other, plain_ids)
        assert steered["intent"] == plain["intent"]  # the user's own intent is still reported
        # no known history: the intent's characteristic items
        cold = (await c.post("/v1/recommend", json={"user_id": "new", "k": 5, "intent": other})).json()
        listed = (await c.get(f"/v1/intents/{other}", params={"k": 5})).json()["items"]
        assert cold["strategy"] == "intent" and [i["item_id"] for i in cold["items"]] == [i["item_id"] for i in listed]


async def test_diversify_spreads_the_list_over_the_users_intents(store: Path) -> None:
    async with running_app(settings_for(store)) as c:
        plain = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 10})).json()
        mixed = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 10, "diversify": True})).json()
        ids = [it["item_id"] for it in mixed["items"]]
        assert len(ids) == 10 == len(set(ids)) and not set(ids) & set(HISTORY)
        assert ids != [it["item_id"] for it in plain["items"]]
        # every item comes from one of the user's intents' steered lists
        ranked = [plain["intent"]["id"]] + [r["id"] for r in plain["intent"]["runners_up"]]
        pools = set()
        for intent in ranked:
            got = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 10, "intent": intent})).json()
            pools |= {it["item_id"] for it in got["items"]}
        assert set(ids) <= pools


async def test_bad_intent_requests_get_a_clear_4xx(store: Path) -> None:
    async with running_app(settings_for(store)) as c:
        r = await c.post("/v1/recommend", json={"history": HISTORY, "intent": 4})
        assert r.status_code == 422 and "intent 4 does not exist" in r.json()["detail"] and "0..3" in r.json()["detail"]
        r = await c.post("/v1/recommend", json={"history": HISTORY, "intent": 1, "diversify": True})
        assert r.status_code == 422 and "not both" in r.json()["detail"]
        for bad in (-1, "two", 1.5):
            r = await c.post("/v1/recommend", json={"history": HISTORY, "intent": bad})
            assert r.status_code == 422 and "intent" in r.text


async def test_served_intents_are_counted_with_bounded_labels(tmp_path: Path) -> None:
    from elcrec.service.bundle import INTENT_LABELS, _labels

    labels = _labels([0.0] * 30 + [0.5, 0.5], 32)
    assert len(set(labels)) == INTENT_LABELS + 1 and labels[30] == "30" and labels[31] == "31"
    assert _labels(None, 3) == ["0", "1", "2"]
    add_version(tmp_path / "s")
    async with running_app(settings_for(tmp_path / "s")) as c:
        got = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 3})).json()["intent"]["id"]
        await c.post("/v1/recommend", json={"history": HISTORY, "k": 3})
        metrics = (await c.get("/metrics")).text
    assert f'elcrec_intents_served_total{{intent="{got}"}} 2.0' in metrics
