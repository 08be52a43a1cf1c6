"""FAISS retrieval against exact brute force; padding and mask rows are never returned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elcrec.service.retrieval import IndexSpecError, ItemIndex, top_unseen
from tests.support.service import random_table as table
from tests.support.service import running_app, settings_for


def exact(t: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = q @ t.T
    scores[:, [0, -1]] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_flat_index_is_exact_and_skips_padding_and_mask() -> None:
    t = table()
    q = np.random.default_rng(1).normal(size=(7, 16)).astype(np.float32)
    scores, rows = ItemIndex(t).search(q, 10)
    np.testing.assert_array_equal(rows, exact(t, q, 10))
    np.testing.assert_allclose(scores, np.take_along_axis(q @ t.T, rows, axis=1), rtol=1e-5)
    assert not np.isin(rows, [0, len(t) - 1]).any()


def test_search_depth_is_capped_by_the_catalog() -> None:
    scores, rows = ItemIndex(table(n=5)).search(np.ones((1, 16), np.float32), 50)
    assert sorted(rows[0].tolist()) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("spec", "params"), [("IVF16,Flat", "nprobe=8"), ("HNSW16", "efSearch=64")])
def test_approximate_indexes_agree_with_exact_search(spec: str, params: str) -> None:
    t = table(n=2000)
    q = np.random.default_rng(2).normal(size=(20, 16)).astype(np.float32)
    _, rows = ItemIndex(t, spec, params).search(q, 10)
    truth = exact(t, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows.tolist(), truth.tolist(), strict=True)])
    assert recall >= 0.8
    assert not np.isin(rows, [0, len(t) - 1]).any()


def test_invalid_index_spec_is_a_clear_error() -> None:
    with pytest.raises(IndexSpecError, match="invalid FAISS index spec 'Nonsense42'"):
        ItemIndex(table(), "Nonsense42")


def test_top_unseen_skips_excluded_and_missing_rows() -> None:
    rows = np.array([5, 3, -1, 9, 2, 7])
    scores = np.array([6.0, 5.0, -np.inf, 4.0, 3.0, 2.0])
    assert top_unseen(scores, rows, 3, {3, 2}) == ([5, 9, 7], [6.0, 4.0, 2.0], 2)


@pytest.mark.anyio
async def test_service_with_an_hnsw_index(store: Path) -> None:
    async with running_app(settings_for(store, index="HNSW8", index_params="efSearch=64")) as c:
        r = await c.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 5})
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        assert (await c.get("/v1/model")).json()["index"] == "HNSW8"


@pytest.mark.anyio
async def test_service_refuses_to_start_with_a_bad_index_spec(store: Path) -> None:
    from elcrec.model.artifact import ArtifactError

    with pytest.raises(ArtifactError, match="invalid FAISS index spec"):
        async with running_app(settings_for(store, index="Bogus")):
            pass
