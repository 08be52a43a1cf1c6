"""A new version in the store is served within seconds; a bad one is refused and the old one keeps serving."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from elcrec.model.artifact import MANIFEST, WEIGHTS, Store
from tests.support.service import TOKEN, AppClient, add_version, running_app, settings_for

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def served_version(c: AppClient) -> str:
    return (await c.get("/v1/model")).json()["version"]


async def wait_for_version(c: AppClient, version: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await served_version(c) == version:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"{version} was not picked up within {timeout} s (serving {await served_version(c)})"
    )


async def test_a_new_current_version_is_picked_up_by_polling(client: AppClient, store: Path) -> None:
    before = (await client.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 5})).json()
    add_version(store, seed=1)
    await wait_for_version(client, "v0002")
    after = (await client.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 5})).json()
    assert after["model_version"] == "v0002" and after["items"] != before["items"]
    text = (await client.get("/metrics")).text
    assert 'elcrec_model_info{version="v0002"} 1.0' in text and 'version="v0001"' not in text
    assert "elcrec_reloads_total 2.0" in text  # start-up + one swap


async def test_admin_reload_loads_current_now(store: Path) -> None:
    async with running_app(settings_for(store, admin_token=TOKEN, poll_interval_s=3600)) as c:
        add_version(store, seed=1)
        assert await served_version(c) == "v0001"
        r = await c.post("/v1/admin/reload", headers=AUTH)
        assert r.json() == {"changed": True, "version": "v0002", "previous": "v0001"}
        assert await served_version(c) == "v0002"


def corrupt_weights(version: Path) -> None:
    with open(version / WEIGHTS, "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00garbage\x00")


def mismatch_config(version: Path) -> None:
    manifest = json.loads((version / MANIFEST).read_text())
    manifest["model_config"]["d"] = 32  # the manifest is not checksummed: the weights no longer fit it
    (version / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("spoil", "error"), [(corrupt_weights, "corrupt"), (mismatch_config, "does not match")]
)
async def test_a_bad_version_is_refused_and_the_old_one_keeps_serving(
    client: AppClient, store: Path, spoil, error: str
) -> None:
    bad = add_version(store, seed=1, make_current=False)
    spoil(bad)
    Store(store).set_current(bad.name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await client.get("/health/ready")).json()["reload"]["failed_version"] != "v0002":
        assert loop.time() < deadline, "the poll never tried the bad version"
        await asyncio.sleep(0.05)
    ready = await client.get("/health/ready")
    assert ready.status_code == 200  # still serving: ready, with the refusal in the details
    assert error in ready.json()["reload"]["last_error"] and ready.json()["model"]["version"] == "v0001"
    r = await client.post("/v1/recommend", json={"history": ["i1"], "k": 3})
    assert r.status_code == 200 and r.json()["model_version"] == "v0001"
    text = (await client.get("/metrics")).text
    assert "elcrec_reload_failures_total 1.0" in text and "elcrec_reload_failing 1.0" in text
    r = await client.post("/v1/admin/reload", headers=AUTH)
    assert (
        r.status_code == 409
        and error in r.json()["detail"]["message"]
        and r.json()["detail"]["serving"] == "v0001"
    )
    # The next good version clears the failure.
    add_version(store, seed=2)
    await wait_for_version(client, "v0003")
    ready = (await client.get("/health/ready")).json()
    assert (
        ready["reload"]["last_error"] is None
        and "elcrec_reload_failing 0.0" in (await client.get("/metrics")).text
    )


async def test_a_broken_current_pointer_is_refused(client: AppClient, store: Path) -> None:
    (store / "CURRENT").write_text("not-a-version\n")
    r = await client.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 409 and "not a version name" in r.json()["detail"]["message"]
    assert (await client.post("/v1/recommend", json={"history": ["i1"]})).status_code == 200


async def test_requests_in_flight_during_swaps_all_succeed(store: Path) -> None:
    async with running_app(
        settings_for(store, admin_token=TOKEN, poll_interval_s=3600, batch_window_ms=2)
    ) as c:
        stop = asyncio.Event()

        async def swap() -> int:
            swaps = 0
            for seed in range(1, 4):
                await asyncio.to_thread(add_version, store, seed)
                r = await c.post("/v1/admin/reload", headers=AUTH)
                assert r.status_code == 200, r.text
                swaps += 1
                await asyncio.sleep(0.02)
            stop.set()
            return swaps

        async def traffic() -> list[str]:
            versions = []
            while not stop.is_set():
                batch = await asyncio.gather(
                    *(
                        c.post("/v1/recommend", json={"history": [f"i{j + 1}", "i9"], "k": 5})
                        for j in range(8)
                    )
                )
                for r in batch:
                    assert r.status_code == 200, r.text
                    versions.append(r.json()["model_version"])
            return versions

        swaps, versions = await asyncio.gather(swap(), traffic())
    assert swaps == 3 and len(set(versions)) >= 2
    assert set(versions) <= {"v0001", "v0002", "v0003", "v0004"}


async def test_startup_without_a_model_fails_clearly(tmp_path: Path) -> None:
    from elcrec.model.artifact import ArtifactError

    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no CURRENT pointer"):
        async with running_app(settings_for(tmp_path / "empty")):
            pass
