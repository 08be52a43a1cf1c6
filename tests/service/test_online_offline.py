"""Offline/online consistency: the service ranks exactly like the offline evaluator's strict protocol
(seen items, padding and mask at -inf) for the same model and histories."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

from elcrec.model.artifact import load_artifact
from elcrec.model.encoder import ELCRec
from elcrec.training.data import eval_split, left_pad, read_interactions
from elcrec.training.evaluate import user_vectors
from elcrec.training.metrics import mask_scores
from tests.support.service import TOYS_DATA, AppClient, add_version, running_app, settings_for

pytestmark = pytest.mark.anyio


def offline_scores(model: ELCRec, histories: list[list[int]]) -> torch.Tensor:
    """(U, V) strict-protocol scores, as the offline evaluator computes them."""
    inputs = left_pad([np.asarray(h, dtype=np.int64) for h in histories], model.cfg.max_len)
    scores = user_vectors(model, inputs) @ model.item_table().detach().float().T
    rows = torch.from_numpy(np.repeat(np.arange(len(histories)), [len(h) for h in histories]))
    cols = torch.from_numpy(np.concatenate(histories))
    return mask_scores(scores, rows, cols, "strict")


async def compare(
    client: AppClient, model: ELCRec, item_ids: list[str | None], histories: list[list[int]], k: int
) -> None:
    scores = offline_scores(model, histories)
    expected_scores, expected_rows = scores.topk(k, dim=1)
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/recommend", json={"history": [item_ids[r] for r in h], "k": k, "exclude_seen": True}
            )
            for h in histories
        )
    )
    row_of = {item: row for row, item in enumerate(item_ids) if item is not None}
    exact = 0
    for u, r in enumerate(responses):
        assert r.status_code == 200, r.text
        got = [row_of[it["item_id"]] for it in r.json()["items"]]
        want = expected_rows[u].tolist()
        exact += got == want
        # Equal up to ties: the service's i-th item has the offline i-th best score.
        assert scores[u, got].tolist() == pytest.approx(expected_scores[u].tolist(), abs=1e-4), (u, got, want)
        assert [it["score"] for it in r.json()["items"]] == pytest.approx(scores[u, got].tolist(), abs=1e-4)
    assert exact >= 0.95 * len(histories)


@pytest.mark.parametrize(("pooling", "mix_alpha"), [("all", 0.0), ("real", 0.0), ("real", 0.7)])
async def test_tiny_model_service_matches_offline_ranking(tmp_path: Path, pooling: str, mix_alpha: float) -> None:
    """mix_alpha 0.7: the frequency filter of the improved preset, served traced or not, ranks as offline."""
    version = add_version(tmp_path / "s", pooling=pooling, mix_alpha=mix_alpha)
    art = load_artifact(version)
    rng = np.random.default_rng(0)
    histories = [rng.integers(1, 41, size=n).tolist() for n in [1, 2, 3, 5, 8, 9, 15, 30] * 3]
    async with running_app(settings_for(tmp_path / "s", batch_window_ms=5)) as c:
        await compare(c, art.model, art.item_ids, histories, k=10)


async def test_released_checkpoint_service_matches_offline_ranking(official_store: Path) -> None:
    art = load_artifact(official_store)
    data = read_interactions(TOYS_DATA, n_items=art.config.n_items)
    split = eval_split(data, art.config.max_len, "test")
    pick = np.random.default_rng(0).choice(len(split.seen), size=64, replace=False)
    longest = int(np.argmax([len(s) for s in split.seen]))  # includes a history longer than T
    histories = [split.seen[i].tolist() for i in [*pick.tolist(), longest]]
    assert max(len(h) for h in histories) > art.config.max_len
    async with running_app(settings_for(official_store, batch_window_ms=5)) as c:
        await compare(c, art.model, art.item_ids, histories, k=20)
