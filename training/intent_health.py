"""Intent health: whether a model's intents are used, spread, distinct and predictive. One definition, used by
`elcrec evaluate`, the manifest written at export, `elcrec report` and bench.results.

For a set of users (a split's inputs and each user's next item), with each user in its intent (the nearest
normalised center, after the version's balancing bias where it has one: model.intents.IntentSpace):
- used: intents holding at least one user; largest: the biggest intent's share of the users;
- effective: exp(Shannon entropy of the shares), 1 when every user is in one intent, K when all are equal;
- characteristic items of an intent: the items ranked by (its description - mean normalised pooled state) .
  item embedding (model.intents.characteristic_scores), which sets the intent apart from the average user; the
  description is the intent's profile (its training users' mean state) where the version has one, else the center;
- overlap: the mean Jaccard overlap of the top-20 characteristic items over pairs of distinct used intents, each
  pair weighted by the product of their shares (1 = every intent lists the same items; lower is more distinct);
- lift@100: how much more often a user's next item is among the 100 characteristic items of the user's own intent
  than among those of an intent drawn at random by share (1 = the intent says nothing about what comes next).
Where the model has an item catalog (model/catalog.py), beside these:
- coherence: the share of the most common value of one categorical field among an intent's 20 characteristic
  items, against the same share in lists of 20 items drawn at random by popularity (the ratio of the means over
  the intents; 1 = the intents' items are no more alike in that field than what users consume at random).

calibrate() fits a version's calibration on the training users (every user's sequence but its last two items, so
that neither the validation nor the test item is seen): the profiles always, the balancing bias for intents trained
to be balanced (the equipartition of `--intent-loss balanced`, applied at assignment). Not for ELCM's or k-means'
centers: on the authors' collapsed Toys checkpoint a bias that spreads the training users left the test users
crowded in one intent (docs/research/INTENTS-NOTES.md, *The version's intent calibration*).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from elcrec.model.catalog import Catalog, ItemCategories, item_categories
from elcrec.model.encoder import ELCRec
from elcrec.model.intent_labels import value_counts
from elcrec.model.intents import IntentSpace
from elcrec.training.data import EvalSplit, Interactions, Windows, eval_split, min_length_users
from elcrec.training.evaluate import pooled_states

OVERLAP_TOP = 20
LIFT_TOP = 100
COHERENCE_TOP = 20
COHERENCE_DRAWS = 200  # random lists the chance share is the mean over


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


def lift_terms(lists: torch.Tensor, assigned: torch.Tensor, nxt: torch.Tensor, s: torch.Tensor, n: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per user (U,): 1 where the next item is among the own intent's items, and the user's chance of that over an
    intent drawn by share. lists (K, m) item columns, assigned (U,) intent ids, nxt (U,) 0-based item columns, s (K,)
    shares."""
    member = membership(lists, n)
    return member[assigned, nxt], (s @ member)[nxt]


def lift(lists: torch.Tensor, assigned: torch.Tensor, nxt: torch.Tensor, s: torch.Tensor, n: int) -> float | None:
    """P(next item among the own intent's items) / P(next item among the items of an intent drawn by share):
    the ratio of lift_terms' means."""
    own, by_share = (t.mean() for t in lift_terms(lists, assigned, nxt, s, n))
    return float(own / by_share) if by_share > 0 else None


def health(
    pooled: torch.Tensor, intents: IntentSpace, items: torch.Tensor, nxt: torch.Tensor,
    overlap_top: int = OVERLAP_TOP, lift_top: int = LIFT_TOP,
) -> IntentHealth:
    """pooled (U, d) states, the intents, real item embeddings (N, d), next items (U,) as 0-based columns."""
    z = F.normalize(pooled.float(), dim=-1)
    intents = intents.to(z.device)
    assigned = intents.assign(z)
    s = shares(assigned, intents.k)
    scores = intents.characteristic_scores(z.mean(0), items.float())
    n = items.shape[0]
    return IntentHealth(
        users=len(z),
        intents=intents.k,
        used=int((s > 0).sum()),
        largest=float(s.max()),
        effective=effective_number(s),
        overlap=overlap(top_items(scores, overlap_top), s, n),
        lift=lift(top_items(scores, lift_top), assigned, nxt, s, n),
    )


def model_health(
    model: ELCRec, data: Interactions, split: str = "test", device: str = "cpu", intents: IntentSpace | None = None
) -> IntentHealth:
    """The health of a model's intents (its centers, uncalibrated, unless `intents` is given) on a split's users."""
    return split_health(model, eval_split(data, model.cfg.max_len, split), device, intents)


def split_health(
    model: ELCRec, ev: EvalSplit, device: str = "cpu", intents: IntentSpace | None = None
) -> IntentHealth:
    pooled = pooled_states(model, ev.inputs, device=device)
    table = model.item_table().detach().float().cpu()[1:-1]  # real items, rows 1..N
    space = intents if intents is not None else IntentSpace(model.intent_centers.detach().float().cpu())
    return health(pooled, space.to("cpu"), table, torch.from_numpy(np.asarray(ev.targets) - 1))


@dataclass(frozen=True)
class Coherence:
    field: str
    top: int  # characteristic items per intent
    own: float  # mean over the intents of the most common value's share among their items
    random: float  # the same for lists drawn by popularity
    ratio: float | None  # own / random; None where random lists hold no value of the field

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def top_share(lists: np.ndarray, cats: ItemCategories, values: np.ndarray) -> np.ndarray:
    """(L, m) item columns, value ids of one field -> (L,) the most common of those values' share of each list."""
    if not len(values):
        return np.zeros(len(lists))
    return np.array([value_counts(row, cats)[values].max() / len(row) for row in lists])


def coherence(
    lists: np.ndarray, cats: ItemCategories, field: str, popularity: np.ndarray, draws: int = COHERENCE_DRAWS,
    seed: int = 0,
) -> Coherence:
    """(K, m) characteristic item columns, the catalog over the N items, one categorical field, (N,) item
    popularity (interactions) -> the coherence of the intents in that field (module docstring)."""
    if field not in {f for f, _ in cats.values}:
        raise ValueError(f"the catalog has no value of field {field!r} on the model's items")
    if len(popularity) != cats.n_items:
        raise ValueError(f"popularity covers {len(popularity)} items, the catalog arrays {cats.n_items}")
    values = cats.field_ids(field)
    m = lists.shape[1]
    weights = popularity.astype(np.float64) + 1e-9  # every item drawable: a list needs m distinct ones
    rng = np.random.default_rng(seed)
    drawn = np.stack([rng.choice(cats.n_items, m, replace=False, p=weights / weights.sum()) for _ in range(draws)])
    own, chance = float(top_share(lists, cats, values).mean()), float(top_share(drawn, cats, values).mean())
    return Coherence(field, m, own, chance, own / chance if chance > 0 else None)


def split_coherence(
    model: ELCRec, ev: EvalSplit, intents: IntentSpace, cats: ItemCategories, field: str, popularity: np.ndarray,
    device: str = "cpu", top: int = COHERENCE_TOP,
) -> Coherence:
    """The coherence of a model's intents (items by characteristic score against the split users' mean state, as
    health lists them)."""
    z = F.normalize(pooled_states(model, ev.inputs, device=device).float(), dim=-1)
    table = model.item_table().detach().float().cpu()[1:-1]
    scores = intents.to("cpu").characteristic_scores(z.mean(0), table)
    return coherence(top_items(scores, top).numpy(), cats, field, popularity)


def catalog_coherence(
    model: ELCRec, data: Interactions, ev: EvalSplit, intents: IntentSpace, catalog: Catalog,
    item_ids: list[str | None], device: str = "cpu",
) -> Coherence | None:
    """split_coherence in the catalog's first field that holds a value on the model's items, popularity from the
    data's interactions; None where no field does."""
    cats = item_categories(catalog, item_ids)
    held = {f for f, _ in cats.values}
    field = next((f for f in catalog.fields if f in held), None)
    if field is None:
        return None
    n = model.cfg.n_items
    popularity = np.bincount(data.items, minlength=n + 1)[1 : n + 1]
    return split_coherence(model, ev, intents, cats, field, popularity, device)


def training_states(model: ELCRec, data: Interactions, device: str = "cpu", shorter: int = 0) -> torch.Tensor:
    """Normalised pooled states of the users' training sequences (all but the last two items), (U', d); with
    `shorter`, of their histories that many items shorter still (users with at least one item left)."""
    cut = 2 + shorter
    users = min_length_users(data, cut + 1)
    inputs = Windows(data.items, data.offsets[users], data.offsets[users + 1] - cut, model.cfg.max_len)
    return F.normalize(pooled_states(model, inputs, device=device).float(), dim=-1)


def balancing_bias(sim: torch.Tensor, steps: int = 200, rate: float = 0.01) -> torch.Tensor:
    """(K,) bias <= 0 such that argmax(sim + bias) spreads the rows of sim (U, K) about evenly over the K columns:
    each step moves a column's bias by -rate * log(its share * K), down where it holds more than 1/K of the rows,
    back up towards 0 where it holds fewer, never above 0.

    Crowded columns shed rows to their neighbours; an empty column is never raised. Raising it (an earlier version)
    let the bias of a center that nobody is near grow until it reached into a dense region, where a small shift of
    the states moves many users across: on Toys the test users then crowded into one intent (docs/research/INTENTS-NOTES.md)."""
    k = sim.shape[1]
    bias = torch.zeros(k)
    for _ in range(steps):
        share = shares((sim + bias).argmax(1), k).float().clamp_min(1e-6)
        bias = (bias - rate * torch.log(share * k)).clamp_max(0.0)
    return bias


def profiles(states: torch.Tensor, assigned: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Each center's members' normalised mean state (the normalised center where it holds nobody): (K, d)."""
    c = F.normalize(centers.float(), dim=-1)
    sums = torch.zeros_like(c).index_add_(0, assigned, states.float())
    return F.normalize(torch.where(sums.norm(dim=1, keepdim=True) > 0, sums, c), dim=-1)


def calibrate(states: torch.Tensor, centers: torch.Tensor, balance: bool, strength: float = 1.0) -> IntentSpace:
    """The centers (K, d) with a calibration fitted on normalised training states (U, d): the balancing bias when
    `balance`, and the profiles of the users each center then holds. `strength` scales the bias (a fraction of it
    spreads the users part of the way: bench/intent_calibration.py reads what spread costs in lift)."""
    c = F.normalize(centers.float(), dim=-1)
    bias = balancing_bias(states @ c.T) * strength if balance else None
    space = IntentSpace(centers.float(), bias)
    return IntentSpace(centers.float(), bias, profiles(states, space.assign(states), centers))


def trained_balanced(model_origin: dict[str, Any]) -> bool:
    """Whether a version's centers were trained to be balanced (`--intent-loss balanced`), from its origin; a
    version calibrated again (`elcrec intents calibrate`) has its parent's centers."""
    if model_origin.get("kind") == "calibrated":
        parent = model_origin.get("parent_origin")
        return isinstance(parent, dict) and trained_balanced(parent)
    train = model_origin.get("train_config")
    return model_origin.get("kind") != "intents-fit" and isinstance(train, dict) and train.get("intent_loss") == "balanced"


def fitted_centers(model: ELCRec, data: Interactions, k: int, seed: int = 1, device: str = "cpu") -> torch.Tensor:
    """Spherical k-means of the pooled states of the users' training sequences (all but the last two items),
    the intents a clustering fitted after training finds: (k, d), normalised."""
    import faiss

    x = training_states(model, data, device).numpy()
    if k > len(x):
        raise ValueError(f"cannot fit {k} intents to {len(x)} users")
    km = faiss.Kmeans(x.shape[1], k, niter=25, nredo=1, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=max(256, math.ceil(len(x) / k)))
    km.train(np.ascontiguousarray(x))
    assert km.centroids is not None
    return F.normalize(torch.from_numpy(np.asarray(km.centroids, dtype=np.float32)), dim=-1)
