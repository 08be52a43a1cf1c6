"""The retraining job's quality gate: the candidate and the live version on the same test split of the merged
data, the live one scored as the service would score it (items it does not know are dropped or never hit)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from elcrec.model.encoder import ELCRec
from elcrec.training.data import EvalSplit, eval_split, left_pad
from elcrec.training.evaluate import evaluate_split, user_vectors
from elcrec.training.merge import Merged
from elcrec.training.metrics import hit_ndcg, mask_scores, target_ranks

GATE_METRIC = "NDCG@10"
# The candidate is published when its GATE_METRIC is at least (1 - GATE_TOLERANCE) x the live version's: a retrain on
# a few new events is noisy, and a strict "not worse" would refuse most of them.
GATE_TOLERANCE = 0.02


@torch.inference_mode()
def evaluate_known(
    model: ELCRec, split: EvalSplit, n_known: int, vocab_size: int, device: str = "cpu"
) -> dict[str, float]:
    """Reference-protocol metrics of a model knowing only rows 1..n_known, on a split over a grown vocabulary.

    Unknown items are dropped from its inputs (as the service does with stored histories), score -inf, and a
    target it does not know is always a miss.
    """
    T = model.cfg.max_len
    if model.cfg.n_items != n_known:
        raise ValueError(f"the model has {model.cfg.n_items} items, n_known is {n_known}")
    inputs = left_pad([h[h <= n_known] for h in split.seen], T)
    vectors = user_vectors(model, inputs, device=device)
    table = model.item_table().detach().float().cpu()  # (n_known + 2, d)
    ranks = []
    for start in range(0, len(vectors), 2048):
        stop = min(start + 2048, len(vectors))
        known = vectors[start:stop] @ table.T  # (b, n_known + 2)
        scores = torch.full((stop - start, vocab_size), float("-inf"))
        scores[:, : n_known + 1] = known[:, : n_known + 1]
        scores[:, -1] = known[:, -1]
        seen = split.seen[start:stop]
        rows = torch.from_numpy(np.repeat(np.arange(stop - start), [len(s) for s in seen]))
        cols = torch.from_numpy(np.concatenate(seen)) if seen else torch.zeros(0, dtype=torch.long)
        scores = mask_scores(scores, rows, cols, "reference")
        scores[:, n_known + 1 : vocab_size - 1] = float("-inf")  # seen or not, it cannot score them
        targets = torch.from_numpy(split.targets[start:stop])
        r = target_ranks(scores, targets)
        never = torch.full_like(r, torch.iinfo(r.dtype).max // 2)  # past every cut-off, however small V is
        ranks.append(torch.where(targets > n_known, never, r))
    return hit_ndcg(torch.cat(ranks))


def compare(
    candidate: ELCRec, current: ELCRec, merged: Merged, tolerance: float, device: str
) -> dict[str, Any]:
    split = eval_split(merged.data, candidate.cfg.max_len, "test")
    cand = evaluate_split(candidate, split, ("reference",), device)["reference"]
    cur = evaluate_known(current, split, merged.n_known, candidate.cfg.vocab_size, device)
    threshold = (1.0 - tolerance) * cur[GATE_METRIC]
    return {
        "metric": GATE_METRIC,
        "split": "test",
        "protocol": "reference",
        "users": len(split.targets),
        "tolerance": tolerance,
        "candidate": cand[GATE_METRIC],
        "current": cur[GATE_METRIC],
        "threshold": threshold,
        "passed": cand[GATE_METRIC] >= threshold,
        "candidate_metrics": cand,
        "current_metrics": cur,
    }
