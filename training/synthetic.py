"""Synthetic interaction data with planted intents: each user follows one latent intent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elcrec.training.data import Interactions


@dataclass(frozen=True)
class SyntheticSpec:
    n_users: int = 2000
    n_items: int = 400
    n_intents: int = 8
    min_len: int = 6
    max_len: int = 20
    p_noise: float = 0.1  # chance that a step is a uniformly random item
    seed: int = 0


def generate(spec: SyntheticSpec = SyntheticSpec()) -> tuple[Interactions, np.ndarray]:
    """-> (interactions, planted intent of each user).

    Items are split into n_intents disjoint groups, each with its own skewed (Zipf-like) popularity.
    A user follows one intent: every item is drawn, without repeats, from that intent's group (or, with
    probability p_noise, uniformly from the whole catalog). Intent and next item are learnable from the
    history; a global popularity ranking knows neither.
    """
    rng = np.random.default_rng(spec.seed)
    groups = _groups(spec, rng)
    weights = [1.0 / np.arange(1, len(g) + 1) ** 0.8 for g in groups]
    weights = [w / w.sum() for w in weights]
    intents = rng.integers(0, spec.n_intents, size=spec.n_users)
    seqs = []
    for u in range(spec.n_users):
        g = intents[u]
        n = int(rng.integers(spec.min_len, min(spec.max_len, len(groups[g])) + 1))
        seq = rng.choice(groups[g], size=n, replace=False, p=weights[g])
        noise = rng.random(n) < spec.p_noise
        seq[noise] = rng.integers(1, spec.n_items + 1, size=int(noise.sum()))
        seqs.append(seq)
    users = [str(u + 1) for u in range(spec.n_users)]
    return Interactions.from_sequences(users, seqs, spec.n_items, source="synthetic"), intents


def planted_catalog(spec: SyntheticSpec = SyntheticSpec(), shelves: int = 8) -> list[dict[str, str]]:
    """A catalog of the items: `genre` is the planted group ("genre 3"), what labels and coherence should find;
    `shelf` is drawn at random, unrelated to the intents, what they should not find."""
    planted = planted_item_intents(spec)
    shelf = np.random.default_rng(spec.seed + 1).integers(0, shelves, size=spec.n_items + 1)
    return [{"id": str(i), "title": f"Item {i}", "genre": f"genre {planted[i]}", "shelf": f"shelf {shelf[i]}"}
            for i in range(1, spec.n_items + 1)]


def _groups(spec: SyntheticSpec, rng: np.random.Generator) -> list[np.ndarray]:
    """The items (1..n_items) of each planted intent: the first draws of `rng`."""
    return np.array_split(rng.permutation(np.arange(1, spec.n_items + 1)), spec.n_intents)


def planted_item_intents(spec: SyntheticSpec = SyntheticSpec()) -> np.ndarray:
    """(n_items + 1,) the planted intent whose group each item is in (index 0: padding, -1), as generate plants them:
    what a test builds a catalog of planted categories from."""
    out = np.full(spec.n_items + 1, -1, dtype=np.int64)
    for k, group in enumerate(_groups(spec, np.random.default_rng(spec.seed))):
        out[group] = k
    return out
