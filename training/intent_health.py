"""Intent health: whether a model's intents are used, spread, distinct and predictive. One definition, used by
`elcrec evaluate`, the manifest written at export, `elcrec report` and bench.results.

For a set of users (a split's inputs and each user's next item), with each user in the nearest normalised center:
- used: intents holding at least one user; largest: the biggest intent's share of the users;
- effective: exp(Shannon entropy of the shares), 1 when every user is in one intent, K when all are equal;
- characteristic items of an intent: the items ranked by (normalised center - mean normalised pooled state) .
  item embedding (model.intents.characteristic_scores), which sets the intent apart from the average user;
- overlap: the mean Jaccard overlap of the top-20 characteristic items over pairs of distinct used intents, each
  pair weighted by the product of their shares (1 = every intent lists the same items; lower is more distinct);
- lift@100: how much more often a user's next item is among the 100 characteristic items of the user's own intent
  than among those of an intent drawn at random by share (1 = the intent says nothing about what comes next).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model.encoder import ELCRec
from model.intents import characteristic_scores
from training.data import EvalSplit, Interactions, eval_split
from training.evaluate import pooled_states

OVERLAP_TOP = 20
LIFT_TOP = 100


@dataclass(frozen=True)
class IntentHealth:
    users: int
    intents: int  # K
    used: int
    largest: float
    effective: float
    overlap: float | None  # None with fewer than two intents in use
    lift: float | None  # None when no user's next item is among any intent's characteristic items

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def shares(assigned: torch.Tensor, k: int) -> torch.Tensor:
    """Share of the users in each of k intents (k,), from each user's intent id (U,)."""
    counts = torch.bincount(assigned, minlength=k).double()
    return counts / counts.sum().clamp_min(1)


def effective_number(s: torch.Tensor) -> float:
    """exp of the Shannon entropy of shares that sum to 1."""
    p = s[s > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def top_items(scores: torch.Tensor, top: int) -> torch.Tensor:
    """(K, N) scores over the real items -> (K, top) 0-based item columns, best first."""
    return torch.topk(scores, k=min(top, scores.shape[1]), dim=1).indices


def membership(lists: torch.Tensor, n: int) -> torch.Tensor:
    """(K, m) item columns -> (K, n) 0/1 float matrix."""
    member = torch.zeros(lists.shape[0], n, dtype=torch.float64)
    return member.scatter_(1, lists, 1.0)


def overlap(lists: torch.Tensor, s: torch.Tensor, n: int) -> float | None:
    """Share-weighted mean Jaccard overlap of the intents' item lists (K, m) over pairs of distinct intents."""
    member = membership(lists, n)
    inter = member @ member.T
    sizes = member.sum(1)
    jaccard = inter / (sizes[:, None] + sizes[None, :] - inter).clamp_min(1)
    weights = s[:, None] * s[None, :]
    weights.fill_diagonal_(0.0)
    total = float(weights.sum())
    return float((weights * jaccard).sum()) / total if total > 0 else None


def lift(lists: torch.Tensor, assigned: torch.Tensor, nxt: torch.Tensor, s: torch.Tensor, n: int) -> float | None:
    """P(next item among the own intent's items) / P(next item among the items of an intent drawn by share).

    lists (K, m) item columns, assigned (U,) intent ids, nxt (U,) 0-based item columns, s (K,) shares."""
    member = membership(lists, n)
    own = member[assigned, nxt].mean()
    by_share = (s @ member)[nxt].mean()  # each user's chance over an intent drawn by share
    return float(own / by_share) if by_share > 0 else None


def health(
    pooled: torch.Tensor, centers: torch.Tensor, items: torch.Tensor, nxt: torch.Tensor,
    overlap_top: int = OVERLAP_TOP, lift_top: int = LIFT_TOP,
) -> IntentHealth:
    """pooled (U, d) states, raw centers (K, d), real item embeddings (N, d), next items (U,) as 0-based columns."""
    z = F.normalize(pooled.float(), dim=-1)
    c = F.normalize(centers.float(), dim=-1)
    assigned = (z @ c.T).argmax(dim=1)  # nearest on the sphere: largest cosine
    s = shares(assigned, c.shape[0])
    scores = characteristic_scores(c, z.mean(0), items.float())
    n = items.shape[0]
    return IntentHealth(
        users=len(z),
        intents=c.shape[0],
        used=int((s > 0).sum()),
        largest=float(s.max()),
        effective=effective_number(s),
        overlap=overlap(top_items(scores, overlap_top), s, n),
        lift=lift(top_items(scores, lift_top), assigned, nxt, s, n),
    )


def model_health(
    model: ELCRec, data: Interactions, split: str = "test", device: str = "cpu", centers: torch.Tensor | None = None
) -> IntentHealth:
    """The health of a model's intents (or of other `centers` on its states) on a split's users."""
    return split_health(model, eval_split(data, model.cfg.max_len, split), device, centers)


def split_health(
    model: ELCRec, ev: EvalSplit, device: str = "cpu", centers: torch.Tensor | None = None
) -> IntentHealth:
    pooled = pooled_states(model, ev.inputs, device=device)
    table = model.item_table().detach().float().cpu()[1:-1]  # real items, rows 1..N
    raw = model.intent_centers.detach().float().cpu() if centers is None else centers
    return health(pooled, raw, table, torch.from_numpy(np.asarray(ev.targets) - 1))


def fitted_centers(model: ELCRec, data: Interactions, k: int, seed: int = 1, device: str = "cpu") -> torch.Tensor:
    """Spherical k-means of the pooled states of the users' training sequences (all but the last two items),
    the intents a clustering fitted after training finds: (k, d), normalised."""
    import faiss

    from training.data import left_pad

    seqs = [data.sequence(u)[:-2] for u in range(data.n_users)]
    inputs = left_pad([s for s in seqs if len(s)], model.cfg.max_len)
    x = F.normalize(pooled_states(model, inputs, device=device).float(), dim=-1).numpy()
    if k > len(x):
        raise ValueError(f"cannot fit {k} intents to {len(x)} users")
    km = faiss.Kmeans(x.shape[1], k, niter=25, nredo=1, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=max(256, math.ceil(len(x) / k)))
    km.train(np.ascontiguousarray(x))
    assert km.centroids is not None
    return F.normalize(torch.from_numpy(np.asarray(km.centroids, dtype=np.float32)), dim=-1)
