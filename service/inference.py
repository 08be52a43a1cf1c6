"""One micro-batch through the encoder, intent assignment and retrieval: plain blocking code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from model.intents import intent_distribution
from service.bundle import ModelBundle
from service.retrieval import TorchExactIndex

DRIVERS = 3  # history items named as what pulls a user towards the top intent


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
    intent_probabilities: list[float]  # of each intent in intent_ids, over all K (model.intents.intent_distribution)
    drivers: list[int]  # history rows whose states lie closest to the top intent's center, closest first
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
        centers = model.intent_centers.float()
        dist, intent, prob = intent_distribution(model.pool(hidden, ids).float(), centers, top, bundle.intent_temperature)
        # What pulls the user towards the top intent: the positions whose states lie closest to its center.
        pull = (F.normalize(hidden.float(), dim=-1) @ F.normalize(centers[intent[:, 0]], dim=-1).unsqueeze(-1)).squeeze(-1)
        pull = pull.masked_fill(ids == 0, float("-inf"))
        near = torch.topk(pull, k=min(DRIVERS, pull.shape[1]), dim=1)
    dist_l, intent_l, prob_l = dist.cpu().tolist(), intent.cpu().tolist(), prob.cpu().tolist()
    near_pos, near_val = near.indices.cpu().tolist(), near.values.cpu().tolist()
    drivers = [
        list(dict.fromkeys(ids_np[i, p] for p, v in zip(pos, val, strict=True) if v > float("-inf")))
        for i, (pos, val) in enumerate(zip(near_pos, near_val, strict=True))
    ]
    # k unseen hits per query, approximate index or not (it searches deeper when one comes back short);
    # the torch index takes the user vectors where they are (on the GPU), FAISS on the host.
    ks, excludes = [q.k for q in queries], [q.exclude for q in queries]
    if isinstance(bundle.index, TorchExactIndex):
        hits = bundle.index.search_unseen(user, ks, excludes)
    else:
        hits = bundle.index.search_unseen(user.cpu().numpy(), ks, excludes)
    return [
        Answer(got_rows, got_scores, intent_l[i][: q.intents], dist_l[i][: q.intents], prob_l[i][: q.intents],
               [int(r) for r in drivers[i]], excluded)
        for i, (q, (got_rows, got_scores, excluded)) in enumerate(zip(queries, hits, strict=True))
    ]
