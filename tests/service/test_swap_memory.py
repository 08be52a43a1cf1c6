"""Memory across model swaps: a served version that is swapped out is freed, and RSS does not grow a swap at a time.

The RSS test runs bench/swap_memory.py's black box small: a real `elcrec serve` process, requests flowing, versions
published one by one. A steady leak (the service kept each traced encoder once, or it might keep each old version's
weights and caches) shows as a slope over the later swaps; allocator noise and the first swaps' warm-up do not.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest

import elcrec.service.reload as reload_module
from bench.swap_memory import report, run, setup
from tests.support.service import TOKEN, add_version, running_app, settings_for

pytestmark = pytest.mark.anyio
SWAPS = 20
FIT_FROM = 5
# MiB a swap: well above the slope of flat runs, well below one kept trace or version a swap (docs/SERVING.md).
MAX_SLOPE = 0.25


async def test_a_swapped_out_version_is_freed(store: Path) -> None:
    async with running_app(settings_for(store, admin_token=TOKEN, poll_interval_s=3600, answer_cache=100)) as c:
        gone = []
        for seed in range(1, 4):
            served = c.resources.holder.bundle
            assert served is not None
            gone.append(weakref.ref(served))
            await c.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 3})
            del served
            add_version(store, seed=seed)
            r = await c.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200 and r.json()["changed"], r.text
        # The batcher holds its last batch (and with it that batch's version) until the next one: one more request.
        await c.post("/v1/recommend", json={"history": ["i3"], "k": 3})
        await asyncio.sleep(0.01)  # the loop's callbacks of the last reload's worker thread still hold its result
        gc.collect()
        alive = [bundle for ref in gone if (bundle := ref()) is not None]
        held = [type(r).__name__ for b in alive for r in gc.get_referrers(b) if r is not alive]
        assert not alive, f"swapped-out versions still referenced: {[b.name for b in alive]}, by {held}"


async def test_the_allocator_gives_back_the_old_versions_memory_after_a_swap(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released: list[str | None] = []
    async with running_app(settings_for(store, admin_token=TOKEN, poll_interval_s=3600)) as c:
        holder = c.resources.holder
        monkeypatch.setattr(reload_module, "RELEASE_DELAY_S", 0.05)
        monkeypatch.setattr(reload_module, "release_freed_memory",
                            lambda: released.append(holder.bundle.name if holder.bundle else None))
        add_version(store, seed=1)
        r = await c.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and released == []  # not while the old version may still answer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not released and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert released == ["v0002"]
    reload_module.release_freed_memory()  # the real one: harmless wherever it runs


def test_rss_does_not_grow_with_every_swap(tmp_path: Path) -> None:
    store = tmp_path / "store"
    setup(store, items=2000, layers=2, d=64, max_len=50, intents=32)
    env = {"ELCREC_THREADS": "1", "ELCREC_ANSWER_CACHE": "100", "ELCREC_POLL_INTERVAL_S": "0.05"}
    result = run(store, swaps=SWAPS, settle_s=1.0, warm_s=2.0, log=tmp_path / "serve.log", env=env)
    figures = report(result, fit_from=FIT_FROM)
    assert figures["requests_failed"] == 0, result["errors"]
    assert figures["requests_ok"] > SWAPS  # requests flowed through the swaps
    rss = [s["rss_mib"] for s in result["samples"]]
    assert figures["slope_mib_per_swap"] <= MAX_SLOPE, f"RSS grows {figures['slope_mib_per_swap']} MiB a swap: {rss}"
