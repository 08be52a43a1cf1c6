"""Sequence augmentations for the contrastive views: crop, mask, reorder (vectorised over a batch)."""

from __future__ import annotations

import numpy as np

CROP_ETA = 0.2
MASK_GAMMA = 0.7
REORDER_BETA = 0.2


def augment_batch(inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random augmentation per row of left-padded inputs (B, T); the result is left-padded again."""
    B, T = inputs.shape
    lengths = (inputs > 0).sum(axis=1)
    start = T - lengths  # first real position
    choice = rng.integers(0, 3, size=B)
    cols = np.arange(T)[None, :]
    out = inputs

    # crop: keep a random contiguous run of max(1, floor(eta n)) items
    crop_len = np.maximum(1, np.floor(CROP_ETA * lengths).astype(np.int64))
    crop_off = (rng.random(B) * (lengths - crop_len + 1)).astype(np.int64)
    src = start[:, None] + crop_off[:, None] + cols - (T - crop_len[:, None])  # source column per output column
    cropped = np.where(cols >= T - crop_len[:, None], np.take_along_axis(inputs, np.clip(src, 0, T - 1), 1), 0)

    # mask: set floor(gamma n) random real positions to 0 (rank of a random key among real positions)
    n_mask = np.floor(MASK_GAMMA * lengths).astype(np.int64)
    keys = np.where(inputs > 0, rng.random((B, T)), np.inf)
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    masked = np.where(ranks < n_mask[:, None], 0, inputs)

    # reorder: shuffle a random contiguous run of floor(beta n) items
    run = np.floor(REORDER_BETA * lengths).astype(np.int64)
    run_off = start + (rng.random(B) * (lengths - run + 1)).astype(np.int64)
    in_run = (cols >= run_off[:, None]) & (cols < (run_off + run)[:, None])
    # outside the run the sort key is the column itself; inside, run_off + U[0, 1) shuffles the run in place
    sort_keys = np.where(in_run, run_off[:, None] + rng.random((B, T)), cols)
    order = np.argsort(sort_keys, axis=1, kind="stable")
    reordered = np.take_along_axis(inputs, order, 1)

    out = np.where((choice == 0)[:, None], cropped, out)
    out = np.where((choice == 1)[:, None], masked, out)
    out = np.where((choice == 2)[:, None], reordered, out)
    return out
