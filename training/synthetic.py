"""Synthetic interaction data with planted intents: each user follows one latent intent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.data import Interactions


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

    Items are split into n_intents disjoint groups; within its group a user walks forward through
    the group's items in order (item j tends to follow item j-1), so both the intent and the next
    item are learnable, while a popularity ranking knows neither.
    """
    rng = np.random.default_rng(spec.seed)
    groups = np.array_split(rng.permutation(np.arange(1, spec.n_items + 1)), spec.n_intents)
    intents = rng.integers(0, spec.n_intents, size=spec.n_users)
    seqs = []
    for u in range(spec.n_users):
        group = groups[intents[u]]
        n = int(rng.integers(spec.min_len, spec.max_len + 1))
        pos = int(rng.integers(0, len(group)))
        seq = []
        for _ in range(n):
            if rng.random() < spec.p_noise:
                seq.append(int(rng.integers(1, spec.n_items + 1)))
            else:
                seq.append(int(group[pos % len(group)]))
                pos += int(rng.integers(1, 3))
        seqs.append(seq)
    users = [str(u + 1) for u in range(spec.n_users)]
    return Interactions.from_sequences(users, seqs, spec.n_items, source="synthetic"), intents
