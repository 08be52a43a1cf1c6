"""Inner-product retrieval over the item table with FAISS; padding and mask rows are never indexed."""

from __future__ import annotations

from collections.abc import Collection

import faiss
import numpy as np


class IndexSpecError(ValueError):
    pass


class ItemIndex:
    """FAISS index over the real item rows 1..N of a (N + 2, d) table; searches return table rows."""

    def __init__(self, table: np.ndarray, spec: str = "Flat", params: str = "") -> None:
        if table.ndim != 2 or table.shape[0] < 3:
            raise ValueError(f"item table must be (N + 2, d) with N >= 1, got {table.shape}")
        items = np.ascontiguousarray(table[1:-1], dtype=np.float32)  # (N, d): row r is label r - 1
        self.n_items, self.dim = items.shape
        self.spec = spec
        try:
            self._index = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise IndexSpecError(f"invalid FAISS index spec {spec!r}: {str(exc).splitlines()[0]}") from exc
        if not self._index.is_trained:
            self._index.train(items)
        self._index.add(items)
        if params:
            try:
                faiss.ParameterSpace().set_index_parameters(self._index, params)  # type: ignore[arg-type]
            except RuntimeError as exc:
                raise IndexSpecError(f"invalid FAISS index parameters {params!r} for {spec!r}") from exc

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, d) queries -> scores (B, k') and table rows (B, k'), best first; k' = min(k, N).

        Approximate indexes may return fewer hits; those slots hold row -1 and score -inf.
        """
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must be (B, {self.dim}), got {queries.shape}")
        k = min(k, self.n_items)
        scores, labels = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        rows = np.where(labels >= 0, labels + 1, -1)
        return np.where(labels >= 0, scores, -np.inf), rows


def top_unseen(
    scores: np.ndarray, rows: np.ndarray, k: int, exclude: Collection[int]
) -> tuple[list[int], list[float], int]:
    """One query's ranked hits -> its first k rows not in `exclude` (nor missing), their scores, and how
    many excluded rows were skipped on the way."""
    out_rows: list[int] = []
    out_scores: list[float] = []
    skipped = 0
    for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
        if row < 0:
            continue
        if row in exclude:
            skipped += 1
            continue
        out_rows.append(row)
        out_scores.append(score)
        if len(out_rows) == k:
            break
    return out_rows, out_scores, skipped
