"""The catalog in the API: fields on items (recommendations and intents), GET /v1/items/{id}, intent labels, intents
found by category, and which intent each item of a steered or diversified answer serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from elcrec.model.artifact import ManifestInfo, Store, load_artifact
from elcrec.model.catalog import Catalog
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace, characteristic_items
from tests.support.service import add_version, running_app, settings_for

pytestmark = pytest.mark.anyio
N = 200
IDS: list[str | None] = [None, *(f"m{r}" for r in range(1, N + 1)), None]
KNOWN = N - 20  # the catalog knows m1..m180 (and "gone", which the model does not)
MEAN = [0.02] * 64
HISTORY = ["m3", "m7", "m2", "m9", "m11"]


def planted_store(root: Path) -> Path:
    """A random model over 200 items whose catalog gives intent k's 15 most characteristic items the genre
    "planted k" (others "plain"), so that each intent's label must name its own."""
    torch.manual_seed(0)
    model = ELCRec(ModelConfig(n_items=N, n_layers=1, n_intents=4, max_len=8))
    with torch.no_grad():
        model.intent_centers.normal_()
    model.eval()
    space = IntentSpace(model.intent_centers.detach())
    top = characteristic_items(space, torch.tensor(MEAN), model.item_table().detach()[1:-1], 15).numpy()
    genres: list[list[str]] = [[] for _ in range(N)]
    for k, cols in enumerate(top):
        for c in cols:
            genres[c].append(f"planted {k}")
    ids = tuple(f"m{r}" for r in range(1, KNOWN + 1)) + ("gone",)
    catalog = Catalog(
        ids, tuple(f"Movie {i}" for i in ids), ("genre", "decade"),
        {"genre": tuple(tuple(genres[c] or ["plain"]) for c in range(KNOWN)) + (("plain",),),
         "decade": tuple((f"{1950 + 10 * (c % 5)}s",) for c in range(KNOWN + 1))}, "movies.csv")
    info = ManifestInfo(intent_mean_state=tuple(MEAN), intent_shares=(0.4, 0.3, 0.2, 0.1),
                        popular_items=("m5", "m190", "m3"))
    Store(root).write_version(model, IDS, info, catalog=catalog)
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return planted_store(tmp_path / "s")


async def test_recommendations_carry_the_fields_asked_for(store: Path) -> None:
    async with running_app(settings_for(store)) as c:
        plain = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 30})).json()
        assert all(it["catalog"] is None and it["intent"] is None for it in plain["items"])
        got = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 30, "fields": ["title", "genre"]})).json()
        assert [it["item_id"] for it in got["items"]] == [it["item_id"] for it in plain["items"]]
        for it in got["items"]:
            row = int(it["item_id"][1:])
            if row <= KNOWN:
                assert it["catalog"]["title"] == f"Movie m{row}" and set(it["catalog"]) == {"title", "genre"}
            else:
                assert it["catalog"] is None  # the model knows it, the catalog does not
        cold = (await c.post("/v1/recommend", json={"user_id": "nobody", "k": 2, "fields": ["decade"]})).json()
        assert cold["strategy"] == "popular" and [it["catalog"] for it in cold["items"]] == [{"decade": ["1990s"]}, None]


async def test_an_unknown_field_is_a_422_naming_it(store: Path, tmp_path: Path) -> None:
    async with running_app(settings_for(store)) as c:
        r = await c.post("/v1/recommend", json={"history": HISTORY, "fields": ["title", "colour"]})
        assert r.status_code == 422 and "'colour'" in r.json()["detail"] and "title, genre, decade" in r.json()["detail"]
        r = await c.get("/v1/intents/1", params={"fields": "title,colour"})
        assert r.status_code == 422 and "'colour'" in r.json()["detail"]
        r = await c.get("/v1/intents", params={"category": "colour:red"})
        assert r.status_code == 422 and "'colour'" in r.json()["detail"]
    add_version(tmp_path / "bare")
    async with running_app(settings_for(tmp_path / "bare")) as c:
        r = await c.post("/v1/recommend", json={"history": ["i1"], "fields": ["title"]})
        assert r.status_code == 422 and "has no catalog" in r.json()["detail"] and "'title'" in r.json()["detail"]
        body = (await c.get("/v1/intents/0")).json()
        assert body["label"] is None and (await c.get("/v1/items/i1")).json()["catalog"] is None


async def test_an_item_is_described_by_its_catalog_fields(store: Path) -> None:
    async with running_app(settings_for(store)) as c:
        r = await c.get("/v1/items/m5")
        assert r.status_code == 200
        assert r.json()["catalog"] == {"title": "Movie m5", "genre": r.json()["catalog"]["genre"], "decade": ["1990s"]}
        assert (await c.get("/v1/items/m190")).json() == {"item_id": "m190", "catalog": None,
                                                          "model_version": "v0001"}
        r = await c.get("/v1/items/gone")
        assert r.status_code == 404 and "'gone'" in r.json()["detail"]


async def test_every_intent_carries_its_label_and_is_found_by_category(store: Path) -> None:
    async with running_app(settings_for(store)) as c:
        listed = (await c.get("/v1/intents", params={"order": "id", "fields": "title", "k": 3})).json()
        for intent in listed["intents"]:
            label = intent["label"]
            assert label["categories"][0]["field"] == "genre"
            assert label["categories"][0]["value"] == f"planted {intent['id']}"
            assert label["categories"][0]["support"] >= 5 and label["categories"][0]["lift"] > 1
            assert label["text"].startswith(f"planted {intent['id']} (genre)") and len(label["titles"]) == 3
            assert all(it["catalog"] == {"title": f"Movie {it['item_id']}"} or int(it["item_id"][1:]) > KNOWN
                       for it in intent["items"])
        for k in range(4):  # the intents whose label names it (its own, and where it also shows, others)
            found = (await c.get("/v1/intents", params={"category": f"genre:planted {k}", "order": "id"})).json()
            holding = [i["id"] for i in listed["intents"]
                       if any(cat["value"] == f"planted {k}" for cat in i["label"]["categories"])]
            assert k in holding and [i["id"] for i in found["intents"]] == holding and found["total"] == len(holding)
        none = (await c.get("/v1/intents", params={"category": "genre:western"})).json()
        assert none["intents"] == [] and none["total"] == 0
        r = await c.get("/v1/intents", params={"category": "genre"})
        assert r.status_code == 422 and "FIELD:VALUE" in r.json()["detail"]
        mine = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 3})).json()["intent"]
        assert mine["label"] == listed["intents"][mine["id"]]["label"]
        assert all(r["label"] == listed["intents"][r["id"]]["label"] for r in mine["runners_up"])


async def test_user_intent_names_the_fields_of_its_because_items(store: Path) -> None:
    async with running_app(settings_for(store)) as c:
        await c.post("/v1/users/u1/events", json={"item_ids": HISTORY})
        body = (await c.get("/v1/users/u1/intent", params={"fields": "title"})).json()["intent"]
        assert body["label"]["text"] and body["because_catalog"] == [
            {"title": f"Movie {i}"} for i in body["because"]]


def _own_scores(store: Path, history: list[str], items: list[str]) -> list[float]:
    art = load_artifact(store)
    rows = torch.tensor([[int(i[1:]) for i in history]])
    with torch.no_grad():
        user = art.model(rows)[0, -1]
        return (art.model.item_table()[[int(i[1:]) for i in items]] @ user).tolist()


@pytest.mark.parametrize("index", ["Flat", "torch"])
async def test_a_diversified_answer_says_which_intent_each_item_serves_with_comparable_scores(
    store: Path, index: str
) -> None:
    async with running_app(settings_for(store, index=index)) as c:
        body = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 12, "diversify": True})).json()
        ranked = [body["intent"]["id"]] + [r["id"] for r in body["intent"]["runners_up"]]
        served = [it["intent"] for it in body["items"]]
        assert set(served) <= set(ranked) and len(set(served)) > 1
        for intent in set(served) - {ranked[0]}:  # a runner-up's items are its steered list's
            steered = (await c.post("/v1/recommend", json={"history": HISTORY, "k": 12, "intent": intent})).json()
            assert all(it["intent"] == intent for it in steered["items"])
            assert {it["item_id"] for it in body["items"] if it["intent"] == intent} <= {
                it["item_id"] for it in steered["items"]}
        # every score is the item's inner product with the user's own vector, whichever intent it serves
        ids = [it["item_id"] for it in body["items"]]
        expected = _own_scores(store, HISTORY, ids)
        assert np.allclose([it["score"] for it in body["items"]], expected, atol=1e-4)


async def test_an_intent_asked_without_history_serves_its_items(store: Path) -> None:
    async with running_app(settings_for(store)) as c:
        body = (await c.post("/v1/recommend", json={"user_id": "new", "k": 4, "intent": 2, "fields": ["genre"]})).json()
        assert body["strategy"] == "intent" and all(it["intent"] == 2 for it in body["items"])
        assert all("planted 2" in it["catalog"]["genre"] for it in body["items"] if it["catalog"] is not None)


def test_the_planted_directions_are_the_services() -> None:
    """The fixture plants by characteristic_items with the mean state: the ranking the service lists intents by
    (normalised (center - mean)), checked here once so that the label tests above test the labels."""
    torch.manual_seed(1)
    centers, items = torch.randn(4, 8), torch.randn(30, 8)
    mean = torch.full((8,), 0.1)
    top = characteristic_items(IntentSpace(centers), mean, items, 5, chunk=7)
    direct = torch.topk(F.normalize(F.normalize(centers, dim=-1) - mean, dim=-1) @ items.T, 5, dim=1).indices
    assert torch.equal(top, direct)
