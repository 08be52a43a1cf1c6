"""Intent ids that survive a new version: a retrain's intents follow the live version's, are numbered as its, and
the job says which intents did not survive.

An intent's id is its center's row. Retraining (or fitting intents again) moves the encoder and the centers, and
nothing keeps row i of the new version the same intent as row i of the old one; users, dashboards and "intent": ID
requests would see their intents shuffled. Three parts, one mechanism:

- follow (a retrain): the candidate's centers are the live version's, carried into the new encoder's state space.
  A warm-started encoder's states move, largely as a rotation of the whole space (on a model stopped early more
  than on a converged one), and centers that stay put lose the users that turned away from them; settling the
  centers again, freely or anchored on the users' live intents, finds another balanced partition. So the rotation
  that best maps the new encoder's states of the users' training sequences onto the live encoder's (orthogonal
  Procrustes) is applied to the live centers (`LiveIntents.transport`; the trainer's last step after a warm
  start, in place of settling: Trainer.follow_intents). Ranking is untouched: the centers do not score items;
- match: the new centers are matched one to one to the live ones carried into the new space, by the Hungarian
  method on their cosine, and reordered so that each keeps its match's id (`match`, keep_intent_ids);
- report: users' intents under both versions, each read as the service reads it (the version's calibration), and
  what became of each live intent (`transitions`): kept, renumbered, merged with others, dissolved; and the new
  intents that were born.

Measured, and the variants that did worse (anchored or free settling): docs/research/INTENTS-NOTES.md, *Intent ids
across versions*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace
from elcrec.training.data import Interactions, left_pad
from elcrec.training.evaluate import pooled_states
from elcrec.training.intent_health import calibrate, training_states

# An old intent continues as the new intent that holds at least this share of its users (at most one can).
CONTINUES = 0.5


@dataclass(frozen=True)
class LiveIntents:
    """The version a retrain follows: its model (users' states), its intents as served, the items it knows (rows
    1..n_known of the new data)."""

    model: ELCRec
    space: IntentSpace
    n_known: int
    version: str | None = None

    def ids(self, seqs: list[np.ndarray], device: str = "cpu") -> np.ndarray:
        """Each sequence's intent id in this version, from the items it knows; -1 where it knows none."""
        known = [s[s <= self.n_known] for s in seqs]
        has = np.array([len(s) > 0 for s in known], dtype=bool)
        out = np.full(len(seqs), -1, dtype=np.int64)
        if has.any():
            inputs = left_pad([s for s, h in zip(known, has, strict=True) if h], self.model.cfg.max_len)
            pooled = pooled_states(self.model, inputs, device=device).float()
            out[has] = self.space.to("cpu").assign(pooled).numpy()
        return out

    def transport(self, model: ELCRec, data: Interactions, device: str = "cpu") -> tuple[torch.Tensor, float]:
        """This version's centers carried into `model`'s state space: (K, d) normalised, and how well the rotation
        maps the states (their mean cosine after it, 1 = the encoders differ by a rotation alone).

        R is the orthogonal matrix that best maps `model`'s normalised pooled states of the users' training
        sequences (all but the last two items) onto this version's (the items it knows), over the users with a
        known item; a center c becomes c R^T, so that cos(z_new, c R^T) = cos(z_new R, c) ~ cos(z_old, c)."""
        seqs = [data.sequence(u)[:-2] for u in range(data.n_users)]
        rows = [s for s in seqs if (s <= self.n_known).any()]
        if not rows:
            raise ValueError("no user's training sequence has an item the live version knows: nothing to follow")
        new = pooled_states(model, left_pad(rows, model.cfg.max_len), device=device)
        old = pooled_states(self.model, left_pad([s[s <= self.n_known] for s in rows], self.model.cfg.max_len),
                            device=device)
        return carry(self.model.intent_centers.detach().cpu(), new, old)


def carry(centers: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Centers (K, d) of the space of states `old` (U, d) carried into the space of `new` (U, d), the same users'
    states under another encoder: (normalised centers, the states' mean cosine after the rotation). Orthogonal
    Procrustes on the normalised states: R minimises ||new R - old||, and a center c becomes c R^T."""
    new, old = F.normalize(new.float(), dim=-1), F.normalize(old.float(), dim=-1)
    u, _, vt = torch.linalg.svd(new.T.double() @ old.double())
    rotation = (u @ vt).float()
    fit = float(F.cosine_similarity(new @ rotation, old, dim=-1).mean())
    return F.normalize(centers.float() @ rotation.T, dim=-1), fit


def match(new: torch.Tensor, old: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(K, d) new and old centers -> (order, similarity): new row order[i] takes id i; similarity[i] is its cosine
    with old center i. Maximises the summed cosine over one-to-one matchings."""
    sim = (F.normalize(new.float(), dim=-1) @ F.normalize(old.float(), dim=-1).T).numpy()  # (new, old)
    new_rows, old_rows = linear_sum_assignment(sim, maximize=True)
    order = np.empty(len(old_rows), dtype=np.int64)
    order[old_rows] = new_rows
    return order, sim[order, np.arange(len(order))]


def transitions(old: np.ndarray, new: np.ndarray, k_old: int, k_new: int) -> dict[str, Any]:
    """What became of the intents, from each user's old and new intent id (U,) each.

    Old intent i continues as the new intent j that holds at least CONTINUES of i's users (there is at most one).
    Then: kept, i continues as j = i and no other old intent continues as j; renumbered, the same with j != i (the
    same users under another id); merged, two or more old intents continue as one j; dissolved, no new intent holds
    CONTINUES of i's users (they scattered); born, a new intent with users that no old intent continues as (a part
    split off an old intent is born too). Intents without users on either side are not counted."""
    counts = np.zeros((k_old, k_new), dtype=np.int64)
    np.add.at(counts, (old, new), 1)
    sizes = counts.sum(1)
    top = counts.argmax(1)
    continues = {i: int(top[i]) for i in range(k_old) if sizes[i] and counts[i, top[i]] >= CONTINUES * sizes[i]}
    sources: dict[int, list[int]] = {}
    for i, j in continues.items():
        sources.setdefault(j, []).append(i)
    single = {j: s[0] for j, s in sources.items() if len(s) == 1}
    merged = [{"into": j, "from": s} for j, s in sorted(sources.items()) if len(s) > 1]
    dissolved = [i for i in range(k_old) if sizes[i] and i not in continues]
    born = [j for j in range(k_new) if counts[:, j].sum() and j not in sources]
    return {
        "kept": sum(1 for j, i in single.items() if i == j),
        "renumbered": [[i, j] for j, i in sorted(single.items()) if i != j],
        "merged": merged,
        "dissolved": dissolved,
        "born": born,
        "users_in_dissolved": round(float(sizes[dissolved].sum() / max(1, sizes.sum())), 4),
        "users_in_born": round(float(counts[:, born].sum() / max(1, sizes.sum())), 4),
        "continues_at": CONTINUES,
    }


def keep_intent_ids(
    model: ELCRec, live: LiveIntents, data: Interactions, balance: bool, device: str = "cpu"
) -> dict[str, Any]:
    """Renumber `model`'s centers (in place) to match the live version's (carried into `model`'s state space:
    LiveIntents.transport; for the same encoder, the live centers themselves), and say how well its intents follow:
    how well the encoders' states align, the matched centers' mean and lowest cosine; the share of users (whole
    histories; the live version reads the items it knows) whose intent id is the same, each version's intents read
    as the service reads them (the live one with its calibration, the new one calibrated as export will: `balance`
    as for its parent); and `transitions`. Models with another number of intents are left as they are."""
    previous = live.model
    if model.cfg.n_intents != previous.cfg.n_intents:
        return {"matched": False, "reason": f"{previous.cfg.n_intents} intents before, {model.cfg.n_intents} now"}
    carried, fit = live.transport(model, data, device)
    order, similarity = match(model.intent_centers.detach().cpu(), carried)
    with torch.no_grad():
        model.intent_centers.copy_(model.intent_centers[torch.from_numpy(order).to(model.intent_centers.device)])
    space = calibrate(training_states(model, data, device).cpu(), model.intent_centers.detach().float().cpu(), balance)
    seqs = [data.sequence(u) for u in range(data.n_users)]
    old_ids = live.ids(seqs, device)
    pooled = pooled_states(model, left_pad(seqs, model.cfg.max_len), device=device).float()
    new_ids = space.assign(pooled).numpy()
    has_known = old_ids >= 0
    old_ids, new_ids = old_ids[has_known], new_ids[has_known]
    return {
        "matched": True,
        "method": "Hungarian matching on the cosine of normalised centers, the live ones carried into the new "
                  "encoder's state space",
        "previous": live.version,
        "states_aligned": round(fit, 4),
        "mean_similarity": round(float(similarity.mean()), 4),
        "min_similarity": round(float(similarity.min()), 4),
        "users_kept": round(float((new_ids == old_ids).mean()), 4) if len(old_ids) else None,
        "users": int(len(old_ids)),
        "intents": transitions(old_ids, new_ids, previous.cfg.n_intents, model.cfg.n_intents),
    }


def intent_ids_line(report: dict[str, Any]) -> str:
    """keep_intent_ids' report as one log line."""
    t = report["intents"]
    kept = "?" if report["users_kept"] is None else f"{report['users_kept']:.1%}"
    return (
        f"intent ids kept by {kept} of the users (matched centers' cosine: mean {report['mean_similarity']:.3f}, "
        f"lowest {report['min_similarity']:.3f}); intents kept {t['kept']}, renumbered {len(t['renumbered'])}, "
        f"merged {sum(len(m['from']) for m in t['merged'])} into {len(t['merged'])}, dissolved {len(t['dissolved'])} "
        f"({t['users_in_dissolved']:.1%} of the users), born {len(t['born'])} ({t['users_in_born']:.1%})"
    )
