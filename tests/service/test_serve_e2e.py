"""End to end: `elcrec import-official`, then `elcrec serve` as a real process on a loopback port with a
real redis-server; every endpoint, bad inputs, a Redis outage, hot reload and a refused version."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from elcrec.model.artifact import MANIFEST, WEIGHTS, Store
from tests.support.service import RedisServer, clean_env, serve_process, wait_for

TOKEN = "e2e-admin-token-9f2c"


@pytest.fixture
def served(
    official_store: Path, own_redis: RedisServer, tmp_path: Path
) -> Iterator[tuple[httpx.Client, Path]]:
    store = tmp_path / "store"
    shutil.copytree(official_store, store)  # this test adds versions; the session's store stays as it is
    env = clean_env(
        ELCREC_REDIS_URL=own_redis.url,
        ELCREC_ADMIN_TOKEN=TOKEN,
        ELCREC_POLL_INTERVAL_S="0.2",
        ELCREC_REDIS_TIMEOUT_S="0.5",
        ELCREC_LOG_LEVEL="info",
    )
    with serve_process(store, env, tmp_path / "serve.log", ready_timeout=120) as served_process:
        yield served_process.client, store
    text = served_process.log_path.read_text()
    assert TOKEN not in text, "the admin token leaked into the log"
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it so the exit status tells why it ended.
    code = served_process.exit_code
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in text, text


def test_serve_end_to_end(served: tuple[httpx.Client, Path], own_redis: RedisServer) -> None:
    c, store = served
    auth = {"Authorization": f"Bearer {TOKEN}"}

    # Health, metadata.
    assert c.get("/health/live").json() == {"status": "alive"}
    ready = c.get("/health/ready").json()
    assert ready["ready"] and ready["history"] == {"backend": "redis", "ok": True}
    model = c.get("/v1/model").json()
    assert model["version"] == "v0001" and model["n_items"] == 11924 and model["n_intents"] == 512
    assert model["origin"]["kind"] == "imported" and model["config"]["n_layers"] == 3

    # Cold start, events, recommendations from the stored history, intent of the user.
    cold = c.post("/v1/recommend", json={"user_id": "alice", "k": 5}).json()
    assert cold["intent"] is None and len(cold["items"]) == 5
    r = c.post("/v1/users/alice/events", json={"item_ids": ["1", "2", "3", "tomorrow-1"]})
    assert r.status_code == 200 and r.json() == {
        "user_id": "alice",
        "stored": 4,
        "unknown_items": ["tomorrow-1"],
    }
    rec = c.post("/v1/recommend", json={"user_id": "alice", "k": 10}).json()
    assert rec["strategy"] == "model" and len(rec["items"]) == 10
    assert not {"1", "2", "3"} & {it["item_id"] for it in rec["items"]}
    same = c.post("/v1/recommend", json={"history": ["1", "2", "3"], "k": 10}).json()
    assert same["items"] == rec["items"] and same["intent"] == rec["intent"]
    intent = c.get("/v1/users/alice/intent").json()
    assert intent["intent"]["id"] == rec["intent"]["id"] and intent["history_length"] == 3
    assert c.get("/v1/users/nobody/intent").status_code == 404
    detail = c.get(f"/v1/intents/{intent['intent']['id']}", params={"k": 5}).json()
    assert len(detail["items"]) == 5 and 0 <= detail["share"] <= 1
    # Intents list what sets their users apart (each intent's profile, the mean state of the training users it holds,
    # against the average user's): the two largest intents of the released checkpoint share at most two of their
    # first eight items (by the centers alone they share 6, the same popular items).
    assert detail["items_by"] == "profile" and model["intent_health"]["used"] >= 2
    shares = json.loads((store / "v0001" / "manifest.json").read_text())["intent_shares"]
    first, second = sorted(range(len(shares)), key=lambda i: -shares[i])[:2]
    lists = [{it["item_id"] for it in c.get(f"/v1/intents/{i}", params={"k": 8}).json()["items"]} for i in (first, second)]
    assert len(lists[0] & lists[1]) <= 2
    # The user's intents as a distribution: probabilities over all 512, largest first; the history items behind it.
    ranked = [intent["intent"], *intent["intent"]["runners_up"]]
    probs = [x["probability"] for x in ranked]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert set(intent["intent"]["because"]) <= {"1", "2", "3"} and intent["intent"]["because"]
    page = c.get("/v1/intents", params={"limit": 5, "k": 8}).json()
    assert page["total"] == 512 and page["health"]["used"] >= 2 and [i["id"] for i in page["intents"][:2]] == [first, second]
    # "intent" ranks towards another intent, "diversify" spreads the list over the user's intents
    other = intent["intent"]["runners_up"][0]["id"]
    towards = c.post("/v1/recommend", json={"user_id": "alice", "k": 10, "intent": other}).json()
    mixed = c.post("/v1/recommend", json={"user_id": "alice", "k": 10, "diversify": True}).json()
    plain = [it["item_id"] for it in rec["items"]]
    assert [it["item_id"] for it in towards["items"]] != plain and [it["item_id"] for it in mixed["items"]] != plain
    assert len({it["item_id"] for it in mixed["items"]}) == 10
    bad = c.post("/v1/recommend", json={"user_id": "alice", "intent": 512})
    assert bad.status_code == 422 and "intent 512 does not exist" in bad.json()["detail"]
    assert c.get("/v1/intents/512").status_code == 404

    # Bad input: 4xx that say what is wrong.
    checks = [
        (c.post("/v1/recommend", json={"history": ["1"], "k": 0}), 422, "greater than or equal to 1"),
        (c.post("/v1/recommend", json={"history": ["1"], "k": 11925}), 422, "catalog"),
        (
            c.post("/v1/recommend", content=b"{nope", headers={"content-type": "application/json"}),
            422,
            "json",
        ),
        (c.post("/v1/recommend", json={"user_id": "x" * 129}), 422, "128"),
        (c.post("/v1/recommend", json={"history": ["1", "no-such-item"]}), 422, "no-such-item"),
        (c.post("/v1/recommend", json={"history": ["1"] * 1001}), 422, "1000"),
        (c.post("/v1/recommend", json={"history": ["1"], "pad": "x" * 300_000}), 413, "limit"),
        (c.post("/v1/recommend", content=(b" " * 1000 for _ in range(300))), 413, "limit"),
        (c.post("/v1/users/bob/events", json={"item_ids": []}), 422, "item_ids"),
        (c.post("/v1/users//events", json={"item_ids": ["1"]}), 404, ""),
        (c.post("/v1/admin/reload"), 401, "Bearer"),
        (c.post("/v1/admin/reload", headers={"Authorization": "Token abc"}), 401, "Bearer"),
        (c.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong"}), 403, "wrong"),
    ]
    for response, status, fragment in checks:
        assert response.status_code == status, (response.request.url, response.text)
        assert fragment.lower() in response.text.lower()
    assert c.post("/v1/admin/reload", headers=auth).json() == {
        "changed": False,
        "version": "v0001",
        "previous": "v0001",
    }

    # Redis outage: own-history requests still succeed, Redis-bound ones get a quick 503; then recovery.
    own_redis.stop()
    start = time.perf_counter()
    assert c.post("/v1/recommend", json={"history": ["1", "2", "3"], "k": 10}).json()["items"] == rec["items"]
    for response in (
        c.post("/v1/recommend", json={"user_id": "alice"}),
        c.post("/v1/users/alice/events", json={"item_ids": ["4"]}),
        c.get("/v1/users/alice/intent"),
    ):
        assert response.status_code == 503 and "Redis" in response.json()["detail"]
    assert time.perf_counter() - start < 8
    ready = c.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["history"]["ok"] is False
    own_redis.start()
    wait_for(lambda: c.get("/health/ready").status_code == 200, 10, "readiness after Redis came back")
    assert c.post("/v1/users/alice/events", json={"item_ids": ["4"]}).status_code == 200
    assert c.post("/v1/recommend", json={"user_id": "alice"}).json()["strategy"] == "model"

    # A new version is picked up by itself; a corrupt one is refused while the last good one serves.
    good = store / "v0002"
    shutil.copytree(store / "v0001", good)
    manifest = json.loads((good / MANIFEST).read_text())
    (good / MANIFEST).write_text(json.dumps({**manifest, "version": "v0002", "parent": "v0001"}))
    Store(store).set_current("v0002")
    wait_for(lambda: c.get("/v1/model").json()["version"] == "v0002", 15, "v0002 to be served")
    bad = store / "v0003"
    shutil.copytree(good, bad)
    with open(bad / WEIGHTS, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"corrupt!")
    Store(store).set_current("v0003")
    wait_for(
        lambda: c.get("/health/ready").json()["reload"]["failed_version"] == "v0003", 15, "v0003 refused"
    )
    assert c.get("/v1/model").json()["version"] == "v0002"
    r = c.post("/v1/admin/reload", headers=auth)
    assert r.status_code == 409 and "corrupt" in r.json()["detail"]["message"]
    assert c.post("/v1/recommend", json={"user_id": "alice"}).json()["model_version"] == "v0002"

    metrics = c.get("/metrics").text
    for line in (
        'elcrec_model_info{version="v0002"} 1.0',
        "elcrec_reload_failures_total 1.0",
        "elcrec_reload_failing 1.0",
        'elcrec_redis_errors_total{operation="read"}',
        'elcrec_request_duration_seconds_count{method="POST",route="/v1/recommend",status="200"}',
        "elcrec_batch_size_count",
        "elcrec_cold_starts_total 1.0",
    ):
        assert line in metrics, line
    assert "alice" not in metrics


def test_two_worker_processes_share_the_port_and_redis(
    store: Path, own_redis: RedisServer, tmp_path: Path
) -> None:
    env = clean_env(ELCREC_REDIS_URL=own_redis.url, ELCREC_LOG_LEVEL="info", ELCREC_THREADS="1")
    with serve_process(store, env, tmp_path / "serve.log", ready_timeout=120, extra=("--workers", "2")) as served:
        c = served.client
        assert c.post("/v1/users/w/events", json={"item_ids": ["i1", "i2"]}).status_code == 200
        for _ in range(20):  # whichever worker answers, the history is in the shared Redis
            r = c.post("/v1/recommend", json={"user_id": "w", "k": 3}, headers={"connection": "close"})
            assert r.status_code == 200 and r.json()["strategy"] == "model"
    log = served.log_path.read_text()
    assert log.count("Application startup complete") == 2, log
