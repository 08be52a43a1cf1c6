"""Security properties a user relies on: the admin token (constant-time check, never logged or echoed), input
bounds, Redis keys that user input cannot steer outside its namespace, and model loading without pickle.
(The container's non-root user is checked in tests/deploy/test_deploy_dockerfile.py.)"""

from __future__ import annotations

import hmac
import pickle
import subprocess
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
import torch

from elcrec.model.artifact import MANIFEST
from elcrec.service.bundle import build_bundle
from elcrec.service.settings import Settings
from tests.support.service import (
    ELCREC_CLI,
    RedisServer,
    add_version,
    clean_env,
    free_port,
    running_app,
    settings_for,
    wait_for,
)

pytestmark = pytest.mark.anyio
SECRET = "tok-7d1c0e94b2a6-never-log-me"


def test_the_admin_token_never_reaches_the_log_or_a_response(store: Path, tmp_path: Path) -> None:
    if not ELCREC_CLI.is_file():
        pytest.skip(f"the elcrec command is not installed beside the interpreter ({ELCREC_CLI})")
    port = free_port()
    env = clean_env(ELCREC_ADMIN_TOKEN=SECRET, ELCREC_LOG_LEVEL="debug", ELCREC_POLL_INTERVAL_S="3600")
    env.update(ELCREC_DEVICE="cpu", OMP_NUM_THREADS="1")
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(ELCREC_CLI), "serve", "--artifacts", str(store), "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    bodies: list[str] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:

            def up() -> bool:
                assert proc.poll() is None, log_path.read_text()
                try:
                    return c.get("/health/ready").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, 120, "elcrec serve to become ready")
            attempts = [
                ({"Authorization": f"Bearer {SECRET}"}, 200),
                ({"Authorization": f"Bearer {SECRET}x"}, 403),  # a wrong token that contains the right one
                ({"Authorization": f"Bearer x{SECRET}"}, 403),
                ({"Authorization": f"Basic {SECRET}"}, 401),
                ({"Authorization": SECRET}, 401),
                ({"X-Admin-Token": SECRET}, 401),
            ]
            for headers, status in attempts:
                r = c.post("/v1/admin/reload", headers=headers)
                assert r.status_code == status, (headers, r.text)
                bodies.append(r.text)
            bad = add_version(store, seed=1, make_current=False)  # a refused reload logs an error
            (bad / MANIFEST).write_text("{")
            (store / "CURRENT").write_text(bad.name + "\n")
            r = c.post("/v1/admin/reload", headers={"Authorization": f"Bearer {SECRET}"})
            assert r.status_code == 409
            bodies += [r.text, c.get("/metrics").text, c.get("/health/ready").text, c.get("/openapi.json").text]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log_path.read_text()
    assert "refused model version v0002" in text  # the log did get the error lines
    assert SECRET not in text, "the admin token leaked into the log"
    assert not [b for b in bodies if SECRET in b], "the admin token was echoed in a response"


def test_the_token_is_compared_in_constant_time_and_hidden_in_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(admin_token=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    calls = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    import anyio

    from elcrec.service.deps import require_admin

    async def check(token: str) -> int:
        from fastapi import HTTPException
        from fastapi.security import HTTPAuthorizationCredentials

        try:
            await require_admin(settings, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token))
        except HTTPException as exc:
            return exc.status_code
        return 200

    assert anyio.run(check, SECRET) == 200 and anyio.run(check, "nope") == 403
    assert calls == [(SECRET.encode(), SECRET.encode()), (b"nope", SECRET.encode())]


LIMITS = {"max_history": 5, "max_event_items": 3, "max_k": 7, "max_body_bytes": 2048}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("POST", "/v1/recommend", {"history": ["i1"] * 6, "k": 3}, 422, "at most 5 allowed"),
        ("POST", "/v1/recommend", {"history": ["i1"], "k": 8}, 422, "k must be between 1 and 7"),
        ("POST", "/v1/recommend", {"history": ["i1"], "k": 0}, 422, "greater than or equal to 1"),
        ("POST", "/v1/recommend", {"history": ["i1"], "k": 10**30}, 422, "k must be between"),
        ("POST", "/v1/recommend", {"user_id": "u" * 129}, 422, "at most 128 characters"),
        ("POST", "/v1/recommend", {"history": ["i" * 129]}, 422, "at most 128 characters"),
        ("POST", "/v1/recommend", {"history": ["i1"] * 500, "k": 3}, 413, "limit of 2048 bytes"),
        ("POST", "/v1/users/u1/events", {"item_ids": ["i1"] * 4}, 422, "at most 3 items"),
        ("POST", "/v1/users/" + "u" * 129 + "/events", {"item_ids": ["i1"]}, 422, "at most 128"),
        ("GET", "/v1/intents/0?k=8", None, 422, "k must be between 1 and 7"),
        ("GET", "/v1/intents/0?k=-1", None, 422, "k must be between 1 and 7"),
        ("GET", "/v1/intents/99999999999999999999", None, 404, "does not exist"),
    ],
)
async def test_inputs_are_bounded(store: Path, method: str, path: str, body, status: int, fragment: str) -> None:
    async with running_app(settings_for(store, **LIMITS)) as c:
        r = await c.request(method, path, json=body)
    assert r.status_code == status and fragment in r.text, r.text


# Glob and Lua/JSON metacharacters, path tricks, other keys' names, the longest id; non-ASCII, control characters
# and whitespace are refused before anything reaches Redis.
ACCEPTED = ["x:*", "*", "?", "[a-z]", "../secret", "..", "elcrec:events", "elcrec:hist:victim", "')--", '"]}', "a" * 128]
REFUSED = ["ü", "用户", "a\x00b", "a\nb", "a b", "\u202etxt", "a" * 129]


async def test_user_ids_cannot_reach_keys_outside_their_own(store: Path, own_redis: RedisServer) -> None:
    db = redis.Redis.from_url(own_redis.url, decode_responses=True)
    canary = {"secret": "s", "x:1": "x", "elcrec:hist:victim": "v"}
    db.mset(canary)
    async with running_app(settings_for(store, redis_url=own_redis.url)) as c:
        for user in ACCEPTED:
            r = await c.post("/v1/recommend", json={"user_id": user, "k": 3})
            assert r.status_code == 200 and r.json()["strategy"] == "popular", (user, r.text)
            r = await c.post(f"/v1/users/{quote(user, safe='')}/events", json={"item_ids": ["i2"]})
            routable = "/" not in user and user != ".."  # %2F is decoded before routing: no such route
            assert r.status_code == (200 if routable else 404), (user, r.status_code)
            r = await c.post("/v1/recommend", json={"user_id": user, "history": ["i3"], "k": 3})
            assert r.status_code == 200
        for user in REFUSED:
            r = await c.post("/v1/recommend", json={"user_id": user, "k": 3})
            assert r.status_code == 422, (user, r.text)
    keys = set(db.keys("*"))
    written = {"elcrec:hist:" + u for u in ACCEPTED if "/" not in u and u != ".."}
    assert keys == set(canary) | {"elcrec:events"} | written
    assert {k: db.get(k) for k in canary} == canary
    assert all(db.lrange(k, 0, -1) == ["i2"] for k in written)
    db.close()


def test_the_service_loads_a_model_without_unpickling_anything(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pickle(*_: object, **__: object) -> None:
        raise AssertionError("the service tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    bundle = build_bundle(store / "v0001", torch.device("cpu"))
    assert bundle.version == "v0001"
