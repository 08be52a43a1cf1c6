"""The v1 API through the whole HTTP stack (in-process transport), on a tiny random model and the
in-process history store."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from elcrec.model.artifact import load_artifact
from elcrec.model.intents import assign_intents
from tests.support.service import (
    ITEM_IDS,
    MAX_LEN,
    N_ITEMS,
    POPULAR,
    TOKEN,
    AppClient,
    running_app,
    settings_for,
)

pytestmark = pytest.mark.anyio


def brute_force(store: Path, history: list[str], k: int, exclude_seen: bool = True) -> list[str]:
    """Reference ranking: last hidden state . item table, padding/mask (and seen) rows at -inf."""
    model = load_artifact(store).model
    rows = [ITEM_IDS.index(i) for i in history][-MAX_LEN:]
    ids = torch.tensor([[0] * (MAX_LEN - len(rows)) + rows])
    with torch.no_grad():
        scores = model(ids)[:, -1] @ model.item_table().T
    scores[0, [0, N_ITEMS + 1]] = float("-inf")
    if exclude_seen:
        scores[0, [ITEM_IDS.index(i) for i in history]] = float("-inf")
    return [str(ITEM_IDS[r]) for r in scores[0].topk(k).indices.tolist()]


async def test_recommend_from_history_returns_top_k_unseen_with_intent(
    client: AppClient, store: Path
) -> None:
    history = ["i1", "i2", "i3"]
    r = await client.post("/v1/recommend", json={"history": history, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["strategy"] == "model" and body["model_version"] == "v0001"
    got = [it["item_id"] for it in body["items"]]
    assert got == brute_force(store, history, 5)
    assert not set(got) & set(history)
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert 0 <= body["intent"]["id"] < 4 and len(body["intent"]["runners_up"]) == 3
    distances = [body["intent"]["distance"]] + [x["distance"] for x in body["intent"]["runners_up"]]
    assert distances == sorted(distances)


async def test_recommend_can_include_seen_items(client: AppClient, store: Path) -> None:
    history = [f"i{r}" for r in range(1, 30)]
    r = await client.post("/v1/recommend", json={"history": history, "k": 10, "exclude_seen": False})
    assert [it["item_id"] for it in r.json()["items"]] == brute_force(store, history, 10, exclude_seen=False)


async def test_recommend_returns_fewer_items_when_seen_cover_the_catalog(client: AppClient) -> None:
    history = [f"i{r}" for r in range(1, N_ITEMS + 1)][::-1] + ["i1"] * 5
    r = await client.post("/v1/recommend", json={"history": history, "k": N_ITEMS})
    assert r.status_code == 200 and r.json()["items"] == []


async def test_user_without_history_gets_popular_items(client: AppClient) -> None:
    r = await client.post("/v1/recommend", json={"user_id": "newcomer", "k": 4})
    body = r.json()
    assert r.status_code == 200
    assert body["intent"] is None and body["strategy"] == "popular"
    assert [it["item_id"] for it in body["items"]] == POPULAR[:4]
    r = await client.post("/v1/recommend", json={"history": [], "k": 3})
    assert [it["item_id"] for it in r.json()["items"]] == POPULAR[:3]
    metrics = (await client.get("/metrics")).text
    assert "elcrec_cold_starts_total 2.0" in metrics


async def test_events_feed_the_history_used_by_recommend(client: AppClient, store: Path) -> None:
    r = await client.post("/v1/users/alice/events", json={"item_ids": ["i4", "i8"]})
    assert r.status_code == 200 and r.json() == {"user_id": "alice", "stored": 2, "unknown_items": []}
    await client.post("/v1/users/alice/events", json={"item_ids": ["i15"]})
    r = await client.post("/v1/recommend", json={"user_id": "alice", "k": 6})
    got = [it["item_id"] for it in r.json()["items"]]
    assert got == brute_force(store, ["i4", "i8", "i15"], 6)
    # An explicit history is appended to the stored one, and both are excluded.
    r = await client.post("/v1/recommend", json={"user_id": "alice", "history": ["i20"], "k": 6})
    assert [it["item_id"] for it in r.json()["items"]] == brute_force(store, ["i4", "i8", "i15", "i20"], 6)


async def test_unknown_event_items_are_kept_reported_and_skipped_when_encoding(
    client: AppClient, store: Path
) -> None:
    r = await client.post("/v1/users/bob/events", json={"item_ids": ["i2", "brand-new", "i9", "brand-new"]})
    assert r.json() == {"user_id": "bob", "stored": 4, "unknown_items": ["brand-new", "brand-new"]}
    assert list(client.resources.history.events)[-1] == ("bob", ["i2", "brand-new", "i9", "brand-new"])  # type: ignore[attr-defined]
    r = await client.post("/v1/recommend", json={"user_id": "bob", "k": 5})
    assert [it["item_id"] for it in r.json()["items"]] == brute_force(store, ["i2", "i9"], 5)
    assert "elcrec_unknown_items_total 2.0" in (await client.get("/metrics")).text


async def test_stored_history_keeps_the_most_recent_items(client: AppClient, store: Path) -> None:
    items = [f"i{r}" for r in range(1, 21)]
    await client.post("/v1/users/carol/events", json={"item_ids": items})
    assert await client.resources.history.get("carol") == items[-MAX_LEN:]
    r = await client.post("/v1/recommend", json={"user_id": "carol", "k": 5})
    assert [it["item_id"] for it in r.json()["items"]] == brute_force(store, items[-MAX_LEN:], 5)


async def test_long_explicit_history_encodes_the_last_T_and_excludes_all(
    client: AppClient, store: Path
) -> None:
    history = [f"i{r % N_ITEMS + 1}" for r in range(300)]
    r = await client.post("/v1/recommend", json={"history": history, "k": 3, "exclude_seen": False})
    assert [it["item_id"] for it in r.json()["items"]] == brute_force(store, history, 3, exclude_seen=False)


async def test_user_intent_is_the_nearest_center_of_the_pooled_history(
    client: AppClient, store: Path
) -> None:
    await client.post("/v1/users/dave/events", json={"item_ids": ["i5", "i6", "i7"]})
    r = await client.get("/v1/users/dave/intent")
    assert r.status_code == 200
    body = r.json()
    model = load_artifact(store).model
    ids = torch.tensor([[0] * (MAX_LEN - 3) + [5, 6, 7]])
    with torch.inference_mode():
        dist, iid = assign_intents(model.pool(model(ids), ids), model.intent_centers, top=4)
    assert [body["intent"]["id"]] + [x["id"] for x in body["intent"]["runners_up"]] == iid[0].tolist()
    assert body["intent"]["distance"] == pytest.approx(dist[0, 0].item(), abs=1e-5)
    assert body["history_length"] == 3
    r = await client.get("/v1/users/nobody/intent")
    assert r.status_code == 404 and "nobody" in r.json()["detail"]


async def test_intent_detail_lists_nearest_items_and_share(client: AppClient, store: Path) -> None:
    model = load_artifact(store).model
    expected = F.normalize(model.intent_centers[2], dim=-1) @ model.item_table()[1:-1].T
    r = await client.get("/v1/intents/2", params={"k": 5})
    body = r.json()
    assert r.status_code == 200 and body["share"] == pytest.approx(0.3)
    assert [it["item_id"] for it in body["items"]] == [f"i{r + 1}" for r in expected.topk(5).indices.tolist()]
    for path in ("/v1/intents/4", "/v1/intents/-1"):
        r = await client.get(path)
        assert r.status_code == 404 and "0..3" in r.json()["detail"]
    assert (await client.get("/v1/intents/abc")).status_code == 422
    assert (await client.get("/v1/intents/1", params={"k": 0})).status_code == 422


async def test_intent_detail_lists_what_sets_the_intent_apart(tmp_path: Path) -> None:
    from tests.support.service import add_version

    mean = [0.5] * 64
    add_version(tmp_path / "s", intent_mean_state=mean, intent_health={"used": 4, "effective": 3.9})
    model = load_artifact(tmp_path / "s").model
    table = model.item_table()[1:-1]
    distinct = (F.normalize(model.intent_centers[2], dim=-1) - torch.tensor(mean)) @ table.T
    async with running_app(settings_for(tmp_path / "s")) as c:
        body = (await c.get("/v1/intents/2", params={"k": 5})).json()
        assert body["items_by"] == "characteristic"
        assert [it["item_id"] for it in body["items"]] == [f"i{r + 1}" for r in distinct.topk(5).indices.tolist()]
        assert (await c.get("/v1/model")).json()["intent_health"] == {"used": 4, "effective": 3.9}
    # a mean of the wrong size is ignored: the center alone ranks
    add_version(tmp_path / "t", intent_mean_state=[0.5] * 3)
    async with running_app(settings_for(tmp_path / "t")) as c:
        assert (await c.get("/v1/intents/2")).json()["items_by"] == "center"


async def test_a_stored_calibration_assigns_with_its_bias_and_lists_items_by_the_profile(tmp_path: Path) -> None:
    from tests.support.service import add_version

    mean = [0.5] * 64
    profiles = F.normalize(torch.randn(4, 64, generator=torch.Generator().manual_seed(3)), dim=-1)
    bias = torch.tensor([0.0, 0.0, 0.0, 5.0])  # far above any cosine: every user in intent 3
    add_version(tmp_path / "s", intent_mean_state=mean, calibration={"bias": bias, "profiles": profiles})
    table = load_artifact(tmp_path / "s").model.item_table()[1:-1]
    by_profile = (profiles[2] - torch.tensor(mean)) @ table.T
    async with running_app(settings_for(tmp_path / "s")) as c:
        body = (await c.get("/v1/intents/2", params={"k": 5})).json()
        assert body["items_by"] == "profile"
        assert [it["item_id"] for it in body["items"]] == [f"i{r + 1}" for r in by_profile.topk(5).indices.tolist()]
        assert (await c.get("/v1/model")).json()["intent_calibration"] == {
            "file": "intents.safetensors", "holds": ["bias", "profiles"]}
        for history in (["i1", "i2"], ["i30", "i31", "i32"], ["i7"]):
            intent = (await c.post("/v1/recommend", json={"history": history, "k": 3})).json()["intent"]
            assert intent["id"] == 3 and intent["probability"] > 0.99


async def test_model_metadata(client: AppClient) -> None:
    body = (await client.get("/v1/model")).json()
    assert body["version"] == "v0001" and body["n_items"] == N_ITEMS and body["n_intents"] == 4
    assert body["index"] == "Flat" and body["device"] == "cpu" and body["pooling"] == "all"


async def test_missing_manifest_fields_are_tolerated(tmp_path: Path) -> None:
    from tests.support.service import add_version

    add_version(tmp_path / "s", popular_items=None, intent_shares="nonsense")
    async with running_app(settings_for(tmp_path / "s")) as c:
        r = await c.post("/v1/recommend", json={"user_id": "x"})
        assert r.status_code == 200 and r.json()["items"] == [] and r.json()["strategy"] == "popular"
        assert (await c.get("/v1/intents/0")).json()["share"] is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"history": ["i1"], "k": 0}, "greater than or equal to 1"),
        ({"history": ["i1"], "k": N_ITEMS + 1}, "between 1 and 40"),
        ({"history": ["i1"], "k": "ten"}, "valid integer"),
        ({}, "give a user_id, a history, or both"),
        ({"user_id": "", "k": 3}, "at least 1 character"),
        ({"user_id": "u" * 129}, "at most 128 characters"),
        ({"user_id": "a b"}, "no whitespace"),
        ({"user_id": "a\nb"}, "no whitespace"),
        ({"history": ["i1", ""]}, "at least 1 character"),
        ({"history": "i1"}, "valid array"),
        ({"history": ["i1"], "kk": 3}, "Extra inputs are not permitted"),
        ({"history": ["i1"] * 1001}, "at most 1000 allowed"),
        ({"history": ["i1", "nope", "i2", "nada"]}, "'nope', 'nada'"),
    ],
)
async def test_bad_recommend_requests_get_a_422_saying_why(
    client: AppClient, body: dict, fragment: str
) -> None:
    r = await client.post("/v1/recommend", json=body)
    assert r.status_code == 422, r.text
    assert fragment in r.text


async def test_unknown_history_items_are_listed(client: AppClient) -> None:
    r = await client.post("/v1/recommend", json={"history": ["i1", "nope"]})
    assert r.json()["unknown_items"] == ["nope"]


async def test_malformed_json_is_a_4xx(client: AppClient) -> None:
    r = await client.post(
        "/v1/recommend", content=b'{"history": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "json_invalid" in r.text


async def test_bad_event_requests(client: AppClient) -> None:
    assert (await client.post("/v1/users/eve/events", json={"item_ids": []})).status_code == 422
    assert (await client.post("/v1/users/eve/events", json={"item_ids": ["x" * 129]})).status_code == 422
    r = await client.post("/v1/users/eve/events", json={"item_ids": ["i1"] * 1001})
    assert r.status_code == 422 and "at most 1000" in r.text
    r = await client.post(f"/v1/users/{'u' * 129}/events", json={"item_ids": ["i1"]})
    assert r.status_code == 422 and "user_id" in r.text
    r = await client.post("/v1/users/a%09b/events", json={"item_ids": ["i1"]})
    assert r.status_code == 422
    assert (await client.post("/v1/users//events", json={"item_ids": ["i1"]})).status_code == 404
    assert await client.resources.history.get("eve") == []


async def test_oversized_bodies_get_413(client: AppClient) -> None:
    big = {"history": ["i1"], "padding": "x" * 300_000}
    r = await client.post("/v1/recommend", json=big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    async def chunks():  # no Content-Length: the limit applies while the body is read
        for _ in range(300):
            yield b" " * 1000

    r = await client.post("/v1/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


async def test_the_largest_valid_request_fits_the_body_limit(client: AppClient) -> None:
    history = [f"{n:0128d}" for n in range(1000)]  # 1000 ids of 128 characters: ~132 kB
    r = await client.post("/v1/recommend", json={"user_id": "u" * 128, "history": history, "k": 10})
    assert r.status_code == 422 and len(r.json()["unknown_items"]) == 1000  # read and understood, not a 413


async def test_admin_reload_needs_the_bearer_token(
    client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert (await client.post("/v1/admin/reload")).status_code == 401
    assert (
        await client.post("/v1/admin/reload", headers={"Authorization": f"Basic {TOKEN}"})
    ).status_code == 401
    assert (await client.post("/v1/admin/reload", headers={"Authorization": "Bearer"})).status_code == 401
    r = await client.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong-token"})
    assert r.status_code == 403 and "wrong-token" not in r.text
    r = await client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json() == {"changed": False, "version": "v0001", "previous": "v0001"}
    assert TOKEN not in caplog.text and "wrong-token" not in caplog.text


async def test_admin_endpoints_are_disabled_without_a_token(store: Path) -> None:
    async with running_app(settings_for(store)) as c:
        r = await c.post("/v1/admin/reload", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 404 and "ELCREC_ADMIN_TOKEN" in r.json()["detail"]


async def test_health_and_metrics(client: AppClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "alive"}
    r = await client.get("/health/ready")
    assert r.status_code == 200
    assert (
        r.json()["model"] == {"loaded": True, "version": "v0001"}
        and r.json()["history"]["backend"] == "memory"
    )
    await client.post("/v1/users/secret-user-42/events", json={"item_ids": ["i1"]})
    await client.post("/v1/recommend", json={"user_id": "secret-user-42"})
    text = (await client.get("/metrics")).text
    for name in (
        "elcrec_request_duration_seconds_bucket",
        "elcrec_batch_size_bucket",
        'elcrec_model_info{version="v0001"} 1.0',
        "elcrec_redis_errors_total",
        "elcrec_cold_starts_total",
        "elcrec_excluded_items_total",
        "elcrec_reload_failures_total",
        'route="/v1/users/{user_id}/events"',
    ):
        assert name in text
    assert "secret-user-42" not in text
    assert all(line.startswith(("#", "elcrec_")) for line in text.splitlines() if line)


def test_serve_refuses_a_missing_store_or_bad_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from elcrec.service.main import serve

    with pytest.raises(SystemExit) as exit_info:
        serve(artifacts=tmp_path / "nowhere", host="127.0.0.1", port=1, workers=1)
    assert exit_info.value.code == 2 and "does not exist" in capsys.readouterr().err
    monkeypatch.setenv("ELCREC_BATCH_MAX_SIZE", "0")
    with pytest.raises(SystemExit):
        serve(artifacts=tmp_path, host="127.0.0.1", port=1, workers=1)
    assert "batch_max_size" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "content_type", "fragment"),
    [
        (b'{"history": ["i1"], "k": 1e400}', "application/json", "finite number"),  # inf: answered, as null
        (b"\xff\xfe", "application/json", "json_invalid"),  # not UTF-8: not echoed back
        (b"", "application/json", "Input should be an object"),
        (b'["i1"]', "application/json", "Input should be an object"),
        (b'{"history": ["i1"]}', "text/plain", "must be JSON"),
    ],
)
async def test_raw_bodies_get_a_422_in_fastapi_format(
    client: AppClient, content: bytes, content_type: str, fragment: str
) -> None:
    r = await client.post("/v1/recommend", content=content, headers={"content-type": content_type})
    assert r.status_code == 422, r.text
    assert fragment in r.text
    assert all(e["loc"][0] == "body" for e in r.json()["detail"])


async def test_json_with_charset_and_vendor_types_is_read(client: AppClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        r = await client.post(
            "/v1/recommend", content=b'{"history": ["i1"], "k": 2}', headers={"content-type": content_type}
        )
        assert r.status_code == 200 and len(r.json()["items"]) == 2, r.text


async def test_inference_thread_gives_the_same_answers(store: Path) -> None:
    body = {"history": ["i1", "i2", "i3"], "k": 5}
    async with running_app(settings_for(store)) as inline:
        expected = (await inline.post("/v1/recommend", json=body)).json()
    async with running_app(settings_for(store, inference_thread=True)) as threaded:
        assert threaded.resources.engine._executor is not None
        got = await asyncio.gather(*(threaded.post("/v1/recommend", json=body) for _ in range(8)))
    for r in got:  # a batch of 8 may round differently from a batch of 1: ids equal, scores close
        answer = r.json()
        assert [i["item_id"] for i in answer["items"]] == [i["item_id"] for i in expected["items"]]
        assert answer["intent"]["id"] == expected["intent"]["id"]
        assert [i["score"] for i in answer["items"]] == pytest.approx([i["score"] for i in expected["items"]])


async def test_intents_come_as_a_distribution_with_the_items_behind_them(client: AppClient, store: Path) -> None:
    from elcrec.model.intents import intent_distribution

    r = (await client.post("/v1/recommend", json={"history": ["i3", "i7", "i2", "i9"], "k": 3})).json()["intent"]
    ranked = [r, *r["runners_up"]]
    probs = [x["probability"] for x in ranked]
    assert all(0 < p <= 1 for p in probs) and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert [x["share"] for x in ranked] == [[0.1, 0.2, 0.3, 0.4][x["id"]] for x in ranked]
    assert r["because"] and set(r["because"]) <= {"i3", "i7", "i2", "i9"}
    # over all K intents the probabilities sum to 1
    model = load_artifact(store).model
    _, _, p = intent_distribution(torch.randn(5, 64), model.intent_centers, top=4)
    assert torch.allclose(p.sum(1), torch.ones(5), atol=1e-5)


async def test_intent_list_pages_by_share_with_distinct_items(tmp_path: Path) -> None:
    from tests.support.service import add_version

    add_version(tmp_path / "s", intent_mean_state=[0.1] * 64, intent_health={"used": 4})
    async with running_app(settings_for(tmp_path / "s")) as c:
        body = (await c.get("/v1/intents", params={"limit": 3, "k": 4})).json()
        assert body["total"] == 4 and body["order"] == "share" and body["health"] == {"used": 4}
        assert [i["id"] for i in body["intents"]] == [3, 2, 1]  # shares 0.4, 0.3, 0.2
        rest = (await c.get("/v1/intents", params={"offset": 3, "limit": 3, "k": 4})).json()["intents"]
        assert [i["id"] for i in rest] == [0]
        by_id = (await c.get("/v1/intents", params={"order": "id"})).json()["intents"]
        assert [i["id"] for i in by_id] == [0, 1, 2, 3] and all(i["items_by"] == "characteristic" for i in by_id)
        single = (await c.get("/v1/intents/2", params={"k": 5})).json()
        listed = next(i for i in by_id if i["id"] == 2)
        assert [it["item_id"] for it in single["items"]] == [it["item_id"] for it in listed["items"]]
        assert [it["score"] for it in single["items"]] == pytest.approx([it["score"] for it in listed["items"]])
        assert (await c.get("/v1/intents", params={"offset": 10})).json()["intents"] == []
        for params, where in (({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"offset": -1}, "offset"),
                              ({"order": "size"}, "order")):
            r = await c.get("/v1/intents", params=params)
            assert r.status_code == 422 and where in r.text
        r = await c.get("/v1/intents", params={"k": 0})
        assert r.status_code == 422 and "k must be between" in r.text
