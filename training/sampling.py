"""Negative sampling without a Python loop: uniform over 1..N+1, rejecting the user's own items."""

from __future__ import annotations

import numpy as np

from elcrec.training.data import Interactions

COMPACT_BLOCK = 1 << 22


class NegativeSampler:
    def __init__(self, data: Interactions, vocab_size: int) -> None:
        self.high = vocab_size  # draws in [1, vocab_size) = 1..N+1, as the reference
        self.vocab = np.int64(vocab_size)
        # Sorted distinct (user, item) pairs. Sorted in place and deduplicated by hand: np.unique was many times
        # slower than the sort on a large log (docs/IMPORT.md, *What training holds for such a data set*).
        keys = np.repeat(np.arange(data.n_users, dtype=np.int64) * self.vocab, data.lengths)
        keys += data.items
        keys.sort()
        distinct = np.ones(len(keys), dtype=bool)
        np.not_equal(keys[1:], keys[:-1], out=distinct[1:])
        # Compacted in place, a block at a time: no second array of all the keys (800 MB at 100 M interactions).
        kept = 0
        for lo in range(0, len(keys), COMPACT_BLOCK):
            block = keys[lo : lo + COMPACT_BLOCK][distinct[lo : lo + COMPACT_BLOCK]]
            keys[kept : kept + len(block)] = block
            kept += len(block)
        self.keys = keys[:kept]

    def _seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.vocab + items
        idx = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return self.keys[idx] == keys

    def sample(self, users: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """users (B,) rows of Interactions -> (B, t) negatives not in each user's whole sequence."""
        u = np.broadcast_to(users.astype(np.int64)[:, None], shape).ravel()
        out = rng.integers(1, self.high, size=u.shape[0])
        bad = np.flatnonzero(self._seen(u, out))
        while bad.size:
            out[bad] = rng.integers(1, self.high, size=bad.size)
            bad = bad[self._seen(u[bad], out[bad])]
        return out.reshape(shape)
