"""A corrupt, truncated or mismatched version published as CURRENT: refused, the old model keeps serving, and the
error is logged, counted in /metrics and shown in the readiness details; rolling CURRENT back clears it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from elcrec.model.artifact import CURRENT, ITEMS, MANIFEST, WEIGHTS, ManifestInfo, Store, sha256_file
from tests.support.service import ITEM_IDS, AppClient, add_version, running_app, settings_for, tiny_model

pytestmark = pytest.mark.anyio


def _rehash(version: Path, name: str) -> None:
    """Update the manifest's checksum of `name`: the damage then gets past the checksum to the next check."""
    manifest = json.loads((version / MANIFEST).read_text())
    manifest["files"][name] = sha256_file(version / name)
    (version / MANIFEST).write_text(json.dumps(manifest))


def flipped_bytes(v: Path) -> None:
    with open(v / WEIGHTS, "r+b") as fh:
        fh.seek(300)
        fh.write(b"\xff" * 16)


def truncated_weights(v: Path) -> None:
    data = (v / WEIGHTS).read_bytes()
    (v / WEIGHTS).write_bytes(data[: len(data) // 2])


def truncated_weights_rehashed(v: Path) -> None:
    truncated_weights(v)
    _rehash(v, WEIGHTS)


def empty_weights_rehashed(v: Path) -> None:
    (v / WEIGHTS).write_bytes(b"")
    _rehash(v, WEIGHTS)


def missing_items(v: Path) -> None:
    (v / ITEMS).unlink()


def manifest_not_json(v: Path) -> None:
    (v / MANIFEST).write_text('{"format_version": 1, "files": ')


def future_format(v: Path) -> None:
    manifest = json.loads((v / MANIFEST).read_text())
    manifest["format_version"] = 99
    (v / MANIFEST).write_text(json.dumps(manifest))


def other_model_config(v: Path) -> None:
    manifest = json.loads((v / MANIFEST).read_text())
    manifest["model_config"]["n_layers"] = 3
    (v / MANIFEST).write_text(json.dumps(manifest))


def fewer_items(v: Path) -> None:
    ids = json.loads((v / ITEMS).read_text())["ids"]
    (v / ITEMS).write_text(json.dumps({"ids": ids[:-2] + [None]}))
    _rehash(v, ITEMS)


def duplicate_item_ids(v: Path) -> None:
    ids = json.loads((v / ITEMS).read_text())["ids"]
    ids[2] = ids[1]
    (v / ITEMS).write_text(json.dumps({"ids": ids}))
    _rehash(v, ITEMS)


Spoil = Callable[[Path], None]
CASES: list[tuple[Spoil, str]] = [
    (flipped_bytes, "is corrupt: sha256"),
    (truncated_weights, "is corrupt: sha256"),
    (truncated_weights_rehashed, "unreadable weights"),
    (empty_weights_rehashed, "unreadable weights"),
    (missing_items, "is missing items.json"),
    (manifest_not_json, "manifest.json is unreadable"),
    (future_format, "format_version 99"),
    (other_model_config, "does not match its config"),
    (fewer_items, "rows; the model config needs"),
    (duplicate_item_ids, "appears on rows"),
]


def nan_version(store: Path) -> Path:
    """Checksums fine, loads fine, but the encoder's output is NaN: caught by the warm-up."""
    model = tiny_model(seed=5)
    with torch.no_grad():
        model.item_embeddings.weight[3] = float("nan")
    return Store(store).write_version(model, ITEM_IDS, ManifestInfo(), make_current=False)


async def _refused(c: AppClient, version: str | None, error: str) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        ready = (await c.get("/health/ready")).json()
        reload = ready["reload"]
        if reload["failed_version"] == version and reload["last_error"] and error in reload["last_error"]:
            return ready
        assert loop.time() < deadline, f"{version} was not refused with {error!r}: {ready}"
        await asyncio.sleep(0.05)


async def _check_refusal(
    c: AppClient, caplog: pytest.LogCaptureFixture, version: str | None, error: str, failures: float
) -> None:
    ready = await _refused(c, version, error)
    assert ready["ready"] is True and ready["model"]["version"] == "v0001"
    r = await c.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 3})
    assert r.status_code == 200 and r.json()["model_version"] == "v0001"
    text = (await c.get("/metrics")).text
    assert f"elcrec_reload_failures_total {failures}" in text and "elcrec_reload_failing 1.0" in text
    logged = [r for r in caplog.records if r.name == "elcrec.reload" and r.levelno == logging.ERROR]
    assert logged and error in logged[-1].getMessage() and "still serving v0001" in logged[-1].getMessage()


async def _roll_back(c: AppClient, store: Path) -> None:
    Store(store).set_current("v0001")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await c.get("/health/ready")).json()["reload"]["last_error"] is not None:
        assert loop.time() < deadline, "rolling CURRENT back did not clear the failure"
        await asyncio.sleep(0.05)
    assert "elcrec_reload_failing 0.0" in (await c.get("/metrics")).text


async def test_bad_versions_are_refused_and_the_served_one_stays(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_app(settings_for(store, poll_interval_s=0.05)) as c:
        failures = 0
        for spoil, error in CASES:
            bad = add_version(store, seed=1, make_current=False)
            spoil(bad)
            (store / CURRENT).write_text(bad.name + "\n")  # set_current would refuse some of these itself
            failures += 1
            await _check_refusal(c, caplog, bad.name, error, float(failures))
            await _roll_back(c, store)

        bad = nan_version(store)
        Store(store).set_current(bad.name)
        failures += 1
        await _check_refusal(c, caplog, bad.name, "non-finite", float(failures))
        await _roll_back(c, store)

        for pointer, error in [("v0999", "does not exist"), ("../../etc", "not a version name"), ("", "not a version")]:
            (store / CURRENT).write_text(pointer + "\n")
            failures += 1
            expected = pointer if pointer == "v0999" else None  # an unreadable pointer names no version
            await _check_refusal(c, caplog, expected, error, float(failures))
            await _roll_back(c, store)

        # A good version after all that is picked up as usual.
        good = add_version(store, seed=2)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (await c.get("/v1/model")).json()["version"] != good.name:
            assert loop.time() < deadline
            await asyncio.sleep(0.05)
