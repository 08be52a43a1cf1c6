"""Inner-product retrieval over the item table (FAISS, or exact with torch); padding and mask rows are never indexed."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import faiss
import numpy as np
import torch

from elcrec.model.item_index import build_item_index, item_rows

BLAS_MIN_QUERIES = 4


class IndexSpecError(ValueError):
    pass


class ItemIndex:
    """FAISS index over the real item rows 1..N of a (N + 2, d) table; searches return table rows.

    `stored` is an index read from the artifact (built by the export with the same spec), used as is."""

    def __init__(
        self, table: np.ndarray, spec: str = "Flat", params: str = "", stored: faiss.Index | None = None
    ) -> None:
        items = item_rows(table)  # (N, d): row r is label r - 1; a view of the table when it can be
        self.n_items, self.dim = items.shape
        self.spec = spec
        self.stored = stored is not None
        self._items = items  # for the exact fallback when an approximate search runs short
        if stored is not None:
            if stored.d != self.dim or stored.ntotal != self.n_items:
                raise ValueError(f"stored index has {stored.ntotal} x {stored.d}, the table {items.shape}")
            self._index = stored
        else:
            try:
                self._index = build_item_index(items, spec)
            except ValueError as exc:
                raise IndexSpecError(str(exc)) from exc
        self._flat = isinstance(self._index, faiss.IndexFlat)
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
        if self._flat:
            # Exact search: one matrix product (BLAS) for a micro-batch of 4 or more queries, a scan per query
            # below that. This FAISS build's default threshold never uses BLAS here, much slower for a batch of
            # 32, while for 1-2 queries the scan is faster than BLAS (docs/SERVING.md, *The path of a recommendation*).
            faiss.cvar.distance_compute_blas_threshold = 1 if len(queries) >= BLAS_MIN_QUERIES else 2**31 - 1
        scores, labels = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        rows = np.where(labels >= 0, labels + 1, -1)
        return np.where(labels >= 0, scores, -np.inf), rows

    def search_unseen(
        self, queries: np.ndarray, ks: Sequence[int], excludes: Sequence[Collection[int]]
    ) -> list[tuple[list[int], list[float], int]]:
        """(B, d) queries, each with its k and rows to exclude -> per query: its best k rows outside the
        exclusion (fewer only when the catalog has fewer), their scores, and how many excluded rows were
        skipped on the way (see top_unseen). k = 0 gives nothing.

        One search k + |exclude| deep serves the batch: enough for exact search, where at most |exclude|
        hits can be dropped. An approximate index can come back short (IVF: the probed lists hold too few
        items), so a short query is searched again 4x deeper, then exactly against the item rows."""
        if len(ks) != len(queries) or len(excludes) != len(queries):
            raise ValueError(f"{len(queries)} queries need as many ks and excludes, got {len(ks)}, {len(excludes)}")
        depth = max((k + len(ex) for k, ex in zip(ks, excludes, strict=True) if k), default=0)
        if not depth:
            return [([], [], 0) for _ in ks]
        scores, rows = self.search(queries, depth)
        hits = []
        for i, (k, exclude) in enumerate(zip(ks, excludes, strict=True)):
            got = top_unseen(scores[i], rows[i], k, exclude) if k else ([], [], 0)
            available = self.n_items - sum(1 for r in exclude if 1 <= r <= self.n_items)
            if len(got[0]) < min(k, available):
                got = self._search_deeper(queries[i], k, exclude, depth, available)
            hits.append(got)
        return hits

    def scores_of(self, query: np.ndarray, rows: Sequence[int]) -> list[float]:
        """(d,) query -> its inner product with the given table rows (1..N), exactly."""
        return (self._items[np.asarray(rows, dtype=np.int64) - 1] @ np.asarray(query, dtype=np.float32)).tolist()

    def _search_deeper(
        self, query: np.ndarray, k: int, exclude: Collection[int], depth: int, available: int
    ) -> tuple[list[int], list[float], int]:
        deeper = min(4 * depth, self.n_items)
        if deeper > depth:
            scores, rows = self.search(query[None], deeper)
            got = top_unseen(scores[0], rows[0], k, exclude)
            if len(got[0]) >= min(k, available):
                return got
        # Exact, as Flat would answer: every row scored, the excluded ones masked out.
        all_scores = self._items @ np.asarray(query, dtype=np.float32)  # (N,)
        excluded = np.fromiter((r - 1 for r in exclude if 1 <= r <= self.n_items), dtype=np.int64)
        kept = all_scores.copy()
        kept[excluded] = -np.inf
        k = min(k, available)
        top = np.argpartition(-kept, k - 1)[:k]
        top = top[np.argsort(-kept[top], kind="stable")]
        skipped = int((all_scores[excluded] >= kept[top[-1]]).sum())
        return (top + 1).tolist(), kept[top].tolist(), skipped


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


TORCH_EXACT = "torch"  # ELCREC_INDEX value: exact top-k by a matrix product on the model's device


class TorchExactIndex:
    """Exact inner-product top-k with torch on the model's device (a GPU when serving on one): the item rows
    stay on the device, a micro-batch is one matrix product, seen items are masked before the top-k, so no
    deeper search is ever needed. Same interface and answers as `ItemIndex` with "Flat" (up to score ties).
    Queries may be numpy arrays or tensors (tensors on the device skip a copy to the host)."""

    stored = False

    def __init__(self, table: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> None:
        items = torch.as_tensor(item_rows(np.asarray(table.detach().cpu() if isinstance(table, torch.Tensor)
                                                     else table)))
        self.device = torch.device(device)
        self._items = items.to(self.device)  # (N, d) float32, row r of the table is label r - 1
        self.n_items, self.dim = items.shape
        self.spec = TORCH_EXACT

    def _queries(self, queries: np.ndarray | torch.Tensor) -> torch.Tensor:
        q = torch.as_tensor(queries).to(self.device, torch.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must be (B, {self.dim}), got {tuple(q.shape)}")
        return q

    @torch.inference_mode()
    def scores_of(self, query: np.ndarray | torch.Tensor, rows: Sequence[int]) -> list[float]:
        """As ItemIndex.scores_of."""
        q = torch.as_tensor(query).to(self.device, torch.float32)
        at = torch.as_tensor(list(rows), dtype=torch.long, device=self.device) - 1
        return (self._items[at] @ q).cpu().tolist()  # type: ignore[no-any-return]

    @torch.inference_mode()
    def search(self, queries: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """As ItemIndex.search: scores (B, k') and table rows (B, k'), best first; k' = min(k, N)."""
        scores, labels = torch.topk(self._queries(queries) @ self._items.T, min(k, self.n_items), dim=1)
        return scores.cpu().numpy(), labels.cpu().numpy() + 1

    @torch.inference_mode()
    def search_unseen(
        self, queries: np.ndarray | torch.Tensor, ks: Sequence[int], excludes: Sequence[Collection[int]]
    ) -> list[tuple[list[int], list[float], int]]:
        """As ItemIndex.search_unseen: per query its best k rows outside `exclude`, their scores, and how many
        excluded rows scored at least as high as the last one returned (would have been returned otherwise)."""
        q = self._queries(queries)
        if len(ks) != len(q) or len(excludes) != len(q):
            raise ValueError(f"{len(q)} queries need as many ks and excludes, got {len(ks)}, {len(excludes)}")
        top = min(max(ks, default=0), self.n_items)
        if top == 0:
            return [([], [], 0) for _ in ks]
        scores = q @ self._items.T  # (B, N)
        pairs = [(i, r - 1) for i, ex in enumerate(excludes) for r in ex if 1 <= r <= self.n_items]
        seen = None
        if pairs:
            at = torch.tensor(pairs, device=self.device).T  # (2, P): query, label
            seen = scores[at[0], at[1]]
            scores[at[0], at[1]] = -torch.inf
        values, labels = torch.topk(scores, top, dim=1)
        values_l, labels_l = values.cpu().tolist(), labels.cpu().tolist()
        skipped = [0] * len(ks)
        if seen is not None:
            n_seen = [0] * len(ks)
            for i, _ in pairs:
                n_seen[i] += 1
            for (i, _), s in zip(pairs, seen.cpu().tolist(), strict=True):
                k = min(ks[i], self.n_items - n_seen[i])
                if k > 0 and s >= values_l[i][k - 1]:
                    skipped[i] += 1
        hits = []
        for i, k in enumerate(ks):
            kept = [(lab + 1, v) for lab, v in zip(labels_l[i][:k], values_l[i][:k], strict=True) if v != -np.inf]
            hits.append(([r for r, _ in kept], [v for _, v in kept], skipped[i] if k else 0))
        return hits
