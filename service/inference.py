"""One micro-batch through the encoder, intent assignment and retrieval: plain blocking code."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from elcrec.model.sequences import left_pad
from elcrec.service.bundle import ModelBundle
from elcrec.service.queries import Answer, Query
from elcrec.service.retrieval import TorchExactIndex

DRIVERS = 3  # history items named as what pulls a user towards the top intent


def run_batch(bundle: ModelBundle, queries: Sequence[Query]) -> list[Answer]:
    if not queries or any(not q.rows for q in queries):
        raise ValueError("every query needs at least one known item")
    model = bundle.model
    # Pooling "all" averages over all T positions, padding included, so it needs full-length inputs.
    ids_np = left_pad([q.rows for q in queries], bundle.max_len, full=bundle.config.pooling == "all")
    ids = torch.from_numpy(ids_np).to(bundle.device)
    top = min(max(q.intents for q in queries), bundle.n_intents)
    with torch.inference_mode():
        hidden = bundle.encoder(ids)  # (B, t, d)
        user = hidden[:, -1].float()  # (B, d)
        assert bundle.intents is not None  # build_bundle sets it
        centers = bundle.intents.centers
        dist, intent, prob = bundle.intents.distribution(model.pool(hidden, ids).float(), top, bundle.intent_temperature)
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
    # One search vector per query, or one per intent for steered and diversified queries (owner: its query).
    # Diversified: the user's own ranking for the nearest intent, steered ones for the runners-up.
    targets = [
        [None, *intent_l[i][1 : q.intents]] if q.diversify else [q.steer] if q.steer is not None else [None]
        for i, q in enumerate(queries)
    ]
    owners = [i for i, t in enumerate(targets) for _ in t]
    plain = all(t == [None] for t in targets)  # the usual case: the user vectors as they are
    vectors = user if plain else steered(
        bundle, user, owners, [j for t in targets for j in t], [queries[i].steer_weight for i in owners]
    )
    # k unseen hits per vector, approximate index or not (it searches deeper when one comes back short);
    # the torch index takes the vectors where they are (on the GPU), FAISS on the host.
    ks, excludes = [queries[i].k for i in owners], [queries[i].exclude for i in owners]
    if isinstance(bundle.index, TorchExactIndex):
        hits = bundle.index.search_unseen(vectors, ks, excludes)
    else:
        hits = bundle.index.search_unseen(vectors.cpu().numpy(), ks, excludes)
    per_query: list[list[tuple[list[int], list[float], int]]] = [[] for _ in queries]
    for i, hit in zip(owners, hits, strict=True):
        per_query[i].append(hit)
    answers = []
    for i, q in enumerate(queries):
        served: list[int] | None = None
        if q.diversify:
            got_rows, got_scores, sources, excluded = interleave(per_query[i], prob_l[i][: q.intents], q.k)
            served = [intent_l[i][j] for j in sources]  # list j ranks for the user's j-th nearest intent
        else:
            got_rows, got_scores, excluded = per_query[i][0]
            if q.steer is not None:
                served = [q.steer] * len(got_rows)
        if served is not None and got_rows:
            # Ranked by moved vectors, scored by the user's own: the scores of one list compare (schemas.ScoredItem).
            got_scores = (bundle.index.scores_of(user[i], got_rows) if isinstance(bundle.index, TorchExactIndex)
                          else bundle.index.scores_of(user[i].cpu().numpy(), got_rows))
        answers.append(Answer(got_rows, got_scores, intent_l[i][: q.intents], dist_l[i][: q.intents],
                              prob_l[i][: q.intents], [int(r) for r in drivers[i]], excluded, served))
    return answers


def steered(
    bundle: ModelBundle, user: torch.Tensor, owners: list[int], intents: list[int | None], weights: list[float]
) -> torch.Tensor:
    """The user vector of each owner, moved towards its intent where one is given: |u| (u / |u| + w v), v the
    intent's unit characteristic direction (bundle.intent_directions): at w = 1 the user's own taste and the
    intent weigh alike in the ranking."""
    base = user[owners]
    steer = [n for n, j in enumerate(intents) if j is not None]
    if not steer:
        return base
    rows = torch.tensor(steer, device=base.device)
    ids = torch.tensor([intents[n] for n in steer], device=base.device)
    directions = bundle.intent_directions.to(base.device)[ids]
    w = torch.tensor([weights[n] for n in steer], device=base.device, dtype=base.dtype).unsqueeze(-1)
    norm = base[rows].norm(dim=-1, keepdim=True)
    out = base.clone()
    out[rows] = norm * (F.normalize(base[rows], dim=-1) + w * directions)
    return out


def interleave(
    lists: Sequence[tuple[list[int], list[float], int]], weights: Sequence[float], k: int
) -> tuple[list[int], list[float], list[int], int]:
    """k items from several ranked lists (one per intent), each list getting a share of the places in proportion
    to its weight (the D'Hondt rule: the next place goes to the list with the largest weight / (places + 1)),
    every list in its own order, no item twice; with the list each item was taken from."""
    taken: set[int] = set()
    rows: list[int] = []
    scores: list[float] = []
    sources: list[int] = []
    places = [0] * len(lists)
    cursor = [0] * len(lists)
    while len(rows) < k:
        open_lists = [j for j, (r, _, _) in enumerate(lists) if cursor[j] < len(r)]
        if not open_lists:
            break
        j = max(open_lists, key=lambda j: (weights[j] / (places[j] + 1), -j))
        got, got_scores, _ = lists[j]
        while cursor[j] < len(got) and got[cursor[j]] in taken:
            cursor[j] += 1
        if cursor[j] < len(got):
            rows.append(got[cursor[j]])
            scores.append(got_scores[cursor[j]])
            sources.append(j)
            taken.add(got[cursor[j]])
            places[j] += 1
            cursor[j] += 1
    return rows, scores, sources, max((x for _, _, x in lists), default=0)
