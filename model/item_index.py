"""A FAISS inner-product index over the real item rows of an item table, and its file form.

The index holds rows 1..N of a (N + 2, d) table (padding row 0 and mask row N + 1 are never indexed):
FAISS label l is table row l + 1. Built here so that the export (which may store it with the artifact)
and the service (which builds it when the artifact has none) make the same index from the same string.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

# Enough points per IVF list for k-means (FAISS warns below 39); more only slows the build.
TRAIN_POINTS_PER_LIST = 64


def item_rows(table: np.ndarray) -> np.ndarray:
    """(N + 2, d) item table -> (N, d) float32 contiguous rows 1..N (a view when it can be)."""
    if table.ndim != 2 or table.shape[0] < 3:
        raise ValueError(f"item table must be (N + 2, d) with N >= 1, got {table.shape}")
    return np.ascontiguousarray(table[1:-1], dtype=np.float32)


def empty_index(spec: str, dim: int) -> faiss.Index:
    """The untrained index a factory string makes (inner product); ValueError names a bad spec."""
    try:
        return faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"invalid FAISS index spec {spec!r}: {str(exc).splitlines()[0]}") from exc


def build_item_index(items: np.ndarray, spec: str, seed: int = 0) -> faiss.Index:
    """(N, d) item rows -> trained FAISS index (inner product) holding them; raises ValueError for a bad spec."""
    if items.ndim != 2:
        raise ValueError(f"items must be (N, d), got {items.shape}")
    n, d = items.shape
    index = empty_index(spec, d)
    if not index.is_trained:
        ivf = faiss.try_extract_index_ivf(index)
        sample = items
        if ivf is not None and n > TRAIN_POINTS_PER_LIST * ivf.nlist:
            # A random sample trains the coarse quantizer as well as all rows, in a fraction of the time.
            pick = np.random.default_rng(seed).choice(n, TRAIN_POINTS_PER_LIST * ivf.nlist, replace=False)
            sample = items[np.sort(pick)]
        index.train(sample)
    index.add(items)
    return index


def write_item_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def read_item_index(path: Path, n_items: int, dim: int) -> faiss.Index:
    """Read an index file and check that it can stand for N items of dimension d (inner product).

    Raises ValueError when the file is unreadable or holds another catalog."""
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path} is not a readable FAISS index: {str(exc).splitlines()[0]}") from exc
    if index.d != dim or index.ntotal != n_items:
        raise ValueError(
            f"{path} indexes {index.ntotal} vectors of dimension {index.d}; the model has {n_items} of {dim}"
        )
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f"{path} is not an inner-product index (metric {index.metric_type})")
    return index
