"""Approximate indexes (IVF, HNSW) against exact search, seen-item exclusion with them, and the index
stored with the artifact used at start-up (or refused when corrupt)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import elcrec.service.retrieval as retrieval_module
from elcrec.model.artifact import INDEX, ArtifactError, ManifestInfo, Store, sha256_file
from elcrec.model.item_index import build_item_index, write_item_index
from elcrec.service.retrieval import ItemIndex
from tests.support.service import ITEM_IDS, N_ITEMS, POPULAR, running_app, settings_for, tiny_model

APPROXIMATE = [("IVF32,Flat", "nprobe=8"), ("HNSW32", "efSearch=64")]


def clustered_table(n: int = 4000, d: int = 16, seed: int = 0) -> np.ndarray:
    """(n + 2, d) table of items around 40 centers, norms varied; padding and mask rows would win."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(40, d))
    items = centers[rng.integers(40, size=n)] + 0.4 * rng.normal(size=(n, d))
    items *= rng.lognormal(0, 0.2, size=(n, 1))
    return np.vstack([np.full((1, d), 100.0), items, np.full((1, d), 100.0)]).astype(np.float32)


def queries_near(t: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = t[1 + rng.integers(len(t) - 2, size=n)]
    return (picks + 0.3 * rng.normal(size=picks.shape)).astype(np.float32)


def exact_unseen(t: np.ndarray, q: np.ndarray, k: int, exclude: set[int]) -> list[int]:
    scores = t @ q
    scores[[0, len(t) - 1, *exclude]] = -np.inf
    return np.argsort(-scores, kind="stable")[:k].tolist()


@pytest.mark.parametrize(("spec", "params"), APPROXIMATE)
def test_approximate_recall_at_10_against_exact_search(spec: str, params: str) -> None:
    t = clustered_table()
    q = queries_near(t, 100)
    _, rows = ItemIndex(t, spec, params).search(q, 10)
    _, truth = ItemIndex(t).search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows.tolist(), truth.tolist(), strict=True)])
    assert recall >= 0.9, f"{spec} {params}: recall@10 {recall:.3f}"


@pytest.mark.parametrize(("spec", "params"), [*APPROXIMATE, ("Flat", "")])
def test_seen_items_are_excluded_and_k_kept(spec: str, params: str) -> None:
    t = clustered_table()
    q = queries_near(t, 40)
    index = ItemIndex(t, spec, params)
    rng = np.random.default_rng(3)
    # Half the seen items are each query's own best hits, so exclusion has work to do.
    excludes = [
        set(exact_unseen(t, qi, 25, set())) | set((1 + rng.integers(len(t) - 2, size=25)).tolist())
        for qi in q
    ]
    hits = index.search_unseen(q, [10] * len(q), excludes)
    recalls = []
    for qi, exclude, (rows, scores, skipped) in zip(q, excludes, hits, strict=True):
        assert len(rows) == len(set(rows)) == 10
        assert not set(rows) & exclude
        assert all(1 <= r <= len(t) - 2 for r in rows)  # never padding (0) nor mask (N + 1)
        assert scores == sorted(scores, reverse=True) and skipped >= 20
        recalls.append(len(set(rows) & set(exact_unseen(t, qi, 10, exclude))) / 10)
    assert np.mean(recalls) >= (1.0 if spec == "Flat" else 0.9)


@pytest.mark.parametrize(("spec", "params"), [("IVF16,Flat", "nprobe=1"), ("HNSW4", "efSearch=1")])
def test_a_short_approximate_answer_is_searched_again_until_k_unseen_items(spec: str, params: str) -> None:
    t = clustered_table(n=800)
    index = ItemIndex(t, spec, params)
    q = queries_near(t, 5)
    # Exclude everything the first search can see, and more: only a deeper or exact search finds k.
    _, first = index.search(q, 400)
    excludes = [{r for r in row.tolist() if r > 0} for row in first]
    hits = index.search_unseen(q, [10] * len(q), excludes)
    for qi, exclude, (rows, _, _) in zip(q, excludes, hits, strict=True):
        assert len(rows) == 10 and not set(rows) & exclude and 0 not in rows and len(t) - 1 not in rows
        if spec.startswith("IVF"):  # the probed list had nothing left: the exact fallback answered
            assert rows == exact_unseen(t, qi, 10, exclude)


def test_when_the_catalog_runs_out_every_unseen_item_is_returned_once() -> None:
    t = clustered_table(n=60)
    index = ItemIndex(t, "IVF4,Flat", "nprobe=1")
    exclude = set(range(1, 56))
    [(rows, _, skipped)] = index.search_unseen(queries_near(t, 1), [10], [exclude])
    assert sorted(rows) == [56, 57, 58, 59, 60] and skipped <= 55
    assert index.search_unseen(queries_near(t, 2), [0, 0], [set(), set()]) == [([], [], 0)] * 2


def stored_store(tmp_path: Path, spec: str) -> Path:
    store = tmp_path / "store"
    info = ManifestInfo(popular_items=tuple(POPULAR), intent_shares=(0.1, 0.2, 0.3, 0.4))
    Store(store).write_version(tiny_model(), ITEM_IDS, info, index_spec=spec)
    return store


@pytest.mark.anyio
@pytest.mark.parametrize(("spec", "params"), [("HNSW8", "efSearch=64"), ("IVF4,Flat", "nprobe=1")])
async def test_stored_index_is_used_at_start_up_and_seen_items_stay_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, params: str
) -> None:
    store = stored_store(tmp_path, spec)

    def no_build(*_: object, **__: object) -> None:
        raise AssertionError("the stored index should have been used, not rebuilt")

    monkeypatch.setattr(retrieval_module, "build_item_index", no_build)
    async with running_app(settings_for(store, index=spec, index_params=params)) as c:
        assert c.resources.holder.bundle is not None and c.resources.holder.bundle.index.stored
        history = [f"i{r}" for r in range(1, 31)]  # 30 of 40 items seen: 10 left
        r = await c.post("/v1/recommend", json={"history": history, "k": 10})
        assert r.status_code == 200, r.text
        got = [it["item_id"] for it in r.json()["items"]]
        assert sorted(got) == sorted(f"i{r}" for r in range(31, 41))
        assert (await c.get("/v1/model")).json()["index"] == spec


@pytest.mark.anyio
async def test_another_configured_index_is_built_instead(tmp_path: Path) -> None:
    store = stored_store(tmp_path, "HNSW8")
    async with running_app(settings_for(store, index="Flat")) as c:
        assert c.resources.holder.bundle is not None and not c.resources.holder.bundle.index.stored
        r = await c.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 5})
        assert r.status_code == 200 and len(r.json()["items"]) == 5


@pytest.mark.anyio
async def test_corrupt_stored_index_stops_the_start_up_with_a_clear_error(tmp_path: Path) -> None:
    store = stored_store(tmp_path, "HNSW8")
    path = store / "v0001" / INDEX
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="index.faiss is corrupt"):
        async with running_app(settings_for(store, index="HNSW8")):
            pass


@pytest.mark.anyio
async def test_stored_index_of_another_catalog_is_refused_even_with_a_matching_checksum(
    tmp_path: Path,
) -> None:
    store = stored_store(tmp_path, "Flat")
    version = store / "v0001"
    other = np.random.default_rng(0).normal(size=(N_ITEMS - 1, 64)).astype(np.float32)
    write_item_index(build_item_index(other, "Flat"), version / INDEX)
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["files"][INDEX] = sha256_file(version / INDEX)
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="stored index of .* is unusable: .* indexes 39 vectors"):
        async with running_app(settings_for(store, index="Flat")):
            pass
