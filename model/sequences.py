"""Behaviour sequences as the encoder reads them: the most recent items, left-padded with 0."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def left_pad(seqs: Sequence[Sequence[int] | np.ndarray], max_len: int, full: bool = True) -> np.ndarray:
    """Keep the last max_len items of each sequence, left-pad with 0 -> (n, width) int64: width max_len when `full`,
    else the longest kept sequence (at least 1)."""
    kept = [s[-max_len:] for s in seqs]
    width = max_len if full else max((len(s) for s in kept), default=1) or 1
    out = np.zeros((len(kept), width), dtype=np.int64)
    for i, s in enumerate(kept):
        if len(s):
            out[i, width - len(s) :] = s
    return out
