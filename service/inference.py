"""One micro-batch through the encoder, intent assignment and retrieval: plain blocking code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.intents import assign_intents
from service.bundle import ModelBundle
from service.retrieval import TorchExactIndex


@dataclass(frozen=True, slots=True)
class Query:
    rows: Sequence[int]  # known item rows, oldest first, not empty
    k: int  # items wanted; 0 = intent only
    exclude: frozenset[int]  # rows never to return
    intents: int = 1  # nearest intents wanted


@dataclass(frozen=True, slots=True)
class Answer:
    rows: list[int]
    scores: list[float]
    intent_ids: list[int]
    intent_distances: list[float]
    excluded: int  # seen items that would otherwise have been returned


def pad_batch(queries: Sequence[Query], max_len: int, full: bool) -> np.ndarray:
    """Left-padded (B, t) int64 of each query's last max_len rows; t = max_len when `full`."""
    seqs = [q.rows[-max_len:] for q in queries]
    width = max_len if full else max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = s
    return ids


def run_batch(bundle: ModelBundle, queries: Sequence[Query]) -> list[Answer]:
    if not queries or any(not q.rows for q in queries):
        raise ValueError("every query needs at least one known item")
    model = bundle.model
    # Pooling "all" averages over all T positions, padding included, so it needs full-length inputs.
    ids_np = pad_batch(queries, bundle.max_len, full=bundle.config.pooling == "all")
    ids = torch.from_numpy(ids_np).to(bundle.device)
    top = min(max(q.intents for q in queries), bundle.n_intents)
    with torch.inference_mode():
        hidden = bundle.encoder(ids)  # (B, t, d)
        user = hidden[:, -1].float()  # (B, d)
        dist, intent = assign_intents(model.pool(hidden, ids).float(), model.intent_centers.float(), top)
    dist_l, intent_l = dist.cpu().tolist(), intent.cpu().tolist()
    # k unseen hits per query, approximate index or not (it searches deeper when one comes back short);
    # the torch index takes the user vectors where they are (on the GPU), FAISS on the host.
    ks, excludes = [q.k for q in queries], [q.exclude for q in queries]
    if isinstance(bundle.index, TorchExactIndex):
        hits = bundle.index.search_unseen(user, ks, excludes)
    else:
        hits = bundle.index.search_unseen(user.cpu().numpy(), ks, excludes)
    return [
        Answer(got_rows, got_scores, intent_l[i][: q.intents], dist_l[i][: q.intents], excluded)
        for i, (q, (got_rows, got_scores, excluded)) in enumerate(zip(queries, hits, strict=True))
    ]
