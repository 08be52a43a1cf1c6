"""Intent ids that survive a new version: the new centers renumbered to match the previous version's.

An intent's id is its center's row. Retraining (or fitting intents again) moves the centers, and nothing keeps
row i of the new version the same intent as row i of the old one; users, dashboards and "intent": ID requests
would see their intents shuffled. Here the new centers are matched one to one to the old ones by the Hungarian
method on the cosine similarity of the normalised centers, and reordered so that each keeps its match's id.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from model.encoder import ELCRec
from model.intents import assign_intents
from training.data import Interactions, left_pad
from training.evaluate import pooled_states


def match(new: torch.Tensor, old: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(K, d) new and old centers -> (order, similarity): new row order[i] takes id i; similarity[i] is its cosine
    with old center i. Maximises the summed cosine over one-to-one matchings."""
    sim = (F.normalize(new.float(), dim=-1) @ F.normalize(old.float(), dim=-1).T).numpy()  # (new, old)
    new_rows, old_rows = linear_sum_assignment(sim, maximize=True)
    order = np.empty(len(old_rows), dtype=np.int64)
    order[old_rows] = new_rows
    return order, sim[order, np.arange(len(order))]


def keep_intent_ids(
    model: ELCRec, previous: ELCRec, data: Interactions, n_known: int, device: str = "cpu"
) -> dict[str, Any]:
    """Renumber `model`'s centers (in place) to match `previous`'s, and say how well that went: the mean and
    lowest cosine of matched centers, and the share of users (whole histories, items `previous` knows) whose
    intent id is the same under both. Models with another number of intents are left as they are."""
    if model.cfg.n_intents != previous.cfg.n_intents:
        return {"matched": False, "reason": f"{previous.cfg.n_intents} intents before, {model.cfg.n_intents} now"}
    order, similarity = match(model.intent_centers.detach().cpu(), previous.intent_centers.detach().cpu())
    with torch.no_grad():
        model.intent_centers.copy_(model.intent_centers[torch.from_numpy(order).to(model.intent_centers.device)])
    seqs = [data.sequence(u) for u in range(data.n_users)]
    new_ids = _intents(model, left_pad(seqs, model.cfg.max_len), device)
    old_ids = _intents(previous, left_pad([s[s <= n_known] for s in seqs], previous.cfg.max_len), device)
    has_known = np.array([bool((s <= n_known).any()) for s in seqs])
    same = (new_ids == old_ids)[has_known]
    return {
        "matched": True,
        "method": "Hungarian matching on the cosine of normalised centers",
        "mean_similarity": round(float(similarity.mean()), 4),
        "min_similarity": round(float(similarity.min()), 4),
        "users_kept": round(float(same.mean()), 4) if len(same) else None,
        "users": int(len(same)),
    }


def _intents(model: ELCRec, inputs: np.ndarray, device: str) -> np.ndarray:
    pooled = pooled_states(model, inputs, device=device)
    return assign_intents(pooled, model.intent_centers.detach().float().cpu())[1][:, 0].numpy()
