"""The in-memory half of `elcrec data import` (training/importer.py): once DuckDB has read the log and numbered
the distinct user and item ids, the rows are three numpy arrays (user code, item code, time) in log order, and the
steps that cost most on strings in DuckDB (the k-core's group-bys, the sort by user, time and position) run here
on integers: the k-core keeps counts of live rows per code, the order is a stable radix sort of an int64 key.

Codes: users and items are numbered by their external id's order (DuckDB's `ORDER BY`), so a user's code is its
row in `users.txt` before the filters, and an item's code breaks popularity ties as `ORDER BY n DESC, i` does.
Rows reach their codes through `HashIndex`: DuckDB's 64-bit `hash()` of the id, looked up in an open-addressing
table of the distinct ids' hashes (checked free of collisions before use), instead of a join on strings. Ids that
are integers over a range not much wider than their number (the usual numbering of a database's rows) take
`DirectIndex` instead: a table over the range, one read a row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elcrec.training import dataset

# What the arrays cost per row at their peak (the sort): item codes (4), the int64 sort key (8, which holds the
# user), the rows grouped by part (4, below 2^31 rows) and the sorted item codes (4); the part being sorted adds
# SORT_BYTES_PER_ROW.
BYTES_PER_ROW = 20
# While they are fetched DuckDB still holds the log: user and item codes and the time (4 + 4 + 8).
FETCHED_BYTES_PER_ROW = 16
CHUNK = 8_000_000  # rows a numpy temporary covers at most
SORT_ROWS = 8_000_000  # rows sorted at a time (about: a part ends with a user)
# A part's sort: its key (8), the radix sort's sorted copy, positions and their buffers (32), its order (8), its
# item codes in log order (4).
SORT_BYTES_PER_ROW = 52
FETCH_ROWS = 2_000_000  # rows fetched from DuckDB at a time
FETCH_OVERHEAD = 400 * 10**6  # a fetch's temporaries: DuckDB's result, its numpy copy, the lookups' indices


def bytes_needed(rows: int) -> int:
    """The in-memory path's arrays at their peak for `rows` kept rows."""
    return rows * BYTES_PER_ROW + min(rows, SORT_ROWS) * SORT_BYTES_PER_ROW


class HashIndex:
    """Distinct 64-bit keys -> their position in `keys`, by linear probing in a table at most half full. With
    `weights` (how often each key will be looked up), of several keys aiming at one slot the heaviest takes it:
    a lookup that finds its key at home is one probe, and with Zipf-like item popularity most rows then do."""

    def __init__(self, keys: np.ndarray, weights: np.ndarray | None = None) -> None:
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        bits = self.bits_for(len(keys))
        self.mask = np.uint64((1 << bits) - 1)
        self.keys = np.zeros(1 << bits, dtype=np.uint64)
        self.codes = np.full(1 << bits, -1, dtype=np.int32)
        slot = (keys & self.mask).astype(np.intp)
        # lightest first: the heaviest of the keys aiming at a free slot writes last (the rule below)
        pending = (np.arange(len(keys), dtype=np.intp) if weights is None else
                   np.argsort(weights, kind="stable").astype(np.intp))
        while pending.size:
            s = slot[pending]
            free = self.codes[s] < 0
            cand, cs = pending[free], s[free]
            self.codes[cs] = cand  # of several keys aiming at one free slot, the last write takes it
            won = self.codes[cs] == cand
            self.keys[cs[won]] = keys[cand[won]]
            placed = np.zeros(len(pending), dtype=bool)
            placed[np.flatnonzero(free)[won]] = True
            pending = pending[~placed]
            slot[pending] = (slot[pending] + 1) & int(self.mask)

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Positions of keys that are all in the index (the caller's guarantee: every row's id is a distinct id).
        Linear probing leaves no free slot between a key's home and its slot, so the first match is the key; most
        rows find it at home, the rest probe on as a shrinking list."""
        hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        slot = (hashes & self.mask).astype(np.intp)
        out = self.codes[slot]
        miss = np.flatnonzero(self.keys[slot] != hashes)
        while miss.size:
            s = (slot[miss] + 1) & int(self.mask)
            slot[miss] = s
            hit = self.keys[s] == hashes[miss]
            out[miss[hit]] = self.codes[s[hit]]
            miss = miss[~hit]
        return out

    @staticmethod
    def bits_for(n: int) -> int:
        return max(4, int(2 * max(n, 1) - 1).bit_length())

    @staticmethod
    def bytes_for(n: int) -> int:
        """The table's bytes (keys and codes) and its building's temporaries for n keys."""
        return (1 << HashIndex.bits_for(n)) * 12 + n * 40


class DirectIndex:
    """Distinct integer ids -> their position in `ids`, by a table over min(ids)..max(ids)."""

    # The table may span this many slots per id (4 bytes each): at most 16 bytes an id, less than HashIndex takes.
    SPREAD = 4

    def __init__(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        self.low = int(ids.min()) if len(ids) else 0
        self.codes = np.full(self.span(ids), -1, dtype=np.int32)
        self.codes[ids - self.low] = np.arange(len(ids), dtype=np.int32)

    @staticmethod
    def span(ids: np.ndarray) -> int:
        return int(ids.max()) - int(ids.min()) + 1 if len(ids) else 0

    @classmethod
    def fits(cls, ids: np.ndarray) -> bool:
        """Whether the ids' range is narrow enough for a table (1,024 slots are always allowed)."""
        return cls.span(ids) <= cls.SPREAD * len(ids) + 1024

    @classmethod
    def bytes_for(cls, ids: np.ndarray) -> int:
        return cls.span(ids) * 4

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Positions of ids that are all in the index (the caller's guarantee, as HashIndex.lookup's)."""
        return self.codes[np.asarray(ids, dtype=np.int64) - self.low]


def unique_keys(keys: np.ndarray) -> bool:
    return len(np.unique(keys)) == len(keys)


def time_rank(t: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """An int64 per row ordered as the times are (equal times equal), and the bits it takes. Whole seconds (the
    usual epoch or date-time columns) are used as they are, less the earliest, where they take at most `bits`,
    written over the times' own buffer (which is gone after); other times (fractions, a wider range) go by their
    rank among the distinct times."""
    if len(t) and bool(np.isfinite(t).all()):
        lo, hi = float(t.min()), float(t.max())
        if (hi - lo < 2.0**53 and int(hi - lo).bit_length() <= bits
                and all(bool(np.array_equal(c, np.floor(c))) for c in _chunks(t))):
            out = t.view(np.int64)
            for k in range(0, len(t), CHUNK):
                out[k : k + CHUNK] = t[k : k + CHUNK] - lo  # the right side is a new array: safe in place
            return out, int(hi - lo).bit_length()
    # NaN sorts last and equals NaN in np.unique, as in DuckDB's ORDER BY; -0.0 equals 0.0 in both.
    _, rank = np.unique(t, return_inverse=True)
    rank = rank.astype(np.int64, copy=False).reshape(-1)
    return rank, int(rank.max()).bit_length() if len(rank) else 0


def _chunks(a: np.ndarray) -> list[np.ndarray]:
    return [a[k : k + CHUNK] for k in range(0, len(a), CHUNK)]


@dataclass
class Rows:
    """The kept rows as codes: user, item and (with a time column) time; in log order until `sort` orders them."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray | None

    def sort(self, threads: int | None = None) -> None:
        """Order by user, then time, then position in the log: a stable sort of an int64 key (user, time) over
        rows in log order. The sort is torch's (a dependency already, and loaded by the CLI): on integer keys it
        is a parallel LSD radix sort, stable, several times faster than numpy's merge sort of int64. It holds
        five of the key's size (the key, its sorted copy, the positions and a buffer for each), so rows go
        through it a part at a time: parts are ranges of users of about SORT_ROWS rows, their rows grouped in
        log order (`group_by_part`), sorted one after the other. Users come back from the counts (each user's
        rows end to end). The peak is `bytes_needed`."""
        n = len(self.users)
        n_users = int(self.users.max()) + 1 if n else 1
        counts = np.bincount(self.users, minlength=n_users)
        first_row = np.cumsum(counts) - counts
        part_of_user = first_row // SORT_ROWS  # a user's rows stay in one part
        n_parts = int(part_of_user[-1]) + 1
        # numpy's stable sort of 8- and 16-bit integers is a radix sort (beyond 65,536 parts, a merge sort)
        small = np.uint8 if n_parts <= 2**8 else np.uint16 if n_parts <= 2**16 else np.int32
        part = part_of_user.astype(small)[self.users] if n_parts > 1 else None
        if self.times is None:
            key = self.users.astype(np.int64)
        else:
            # a rank takes at most 31 bits below 2^31 rows, so with the user it fits in 63
            key, tbits = time_rank(self.times, 63 - max(1, (n_users - 1).bit_length()))
            self.times = None
            for k in range(0, n, CHUNK):
                key[k : k + CHUNK] |= self.users[k : k + CHUNK].astype(np.int64) << tbits
        self.users = np.empty(0, dtype=np.int32)
        if part is None:
            items = self.items[radix_argsort(key, threads)]
        else:
            rows_by_part, bounds = group_by_part(part, n_parts)
            del part
            items = np.empty(n, dtype=np.int32)
            for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
                rows = rows_by_part[lo:hi]  # ascending: the gathers below read the arrays front to back
                items[lo:hi] = self.items[rows][radix_argsort(key[rows], threads)]
        self.users = np.repeat(np.arange(n_users, dtype=np.int32), counts)
        self.items = items

    def keep(self, mask: np.ndarray) -> None:
        self.users, self.items = self.users[mask], self.items[mask]


def group_by_part(part: np.ndarray, n_parts: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows grouped by their part number, in log order within a part, and each part's bounds in the grouping:
    a counting sort, CHUNK rows at a time (a stable sort of each chunk's part numbers), each chunk's rows of a part
    appended to that part's."""
    bounds = np.concatenate([[0], np.cumsum(np.bincount(part, minlength=n_parts))])
    rows = np.empty(len(part), dtype=np.int32 if len(part) < 2**31 else np.int64)
    filled = bounds[:-1].copy()
    for lo in range(0, len(part), CHUNK):
        chunk = part[lo : lo + CHUNK]
        order = np.argsort(chunk, kind="stable").astype(rows.dtype) + lo
        ends = np.cumsum(np.bincount(chunk, minlength=n_parts))
        for p in np.flatnonzero(np.diff(ends, prepend=0)).tolist():
            start = int(ends[p - 1]) if p else 0
            m = int(ends[p]) - start
            rows[filled[p] : filled[p] + m] = order[start : start + m]
            filled[p] += m
    return rows, bounds


def radix_argsort(key: np.ndarray, threads: int | None = None) -> np.ndarray:
    """The stable argsort of non-negative int64 keys, by torch's radix sort on `threads` threads (default: every
    core). torch.sort(stable=True) gives numpy's stable order whichever algorithm it picks."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        _, order = torch.sort(torch.from_numpy(key), stable=True)
    finally:
        torch.set_num_threads(before)
    return order.numpy()


def consecutive_repeats(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Rows (sorted by user, then time) that repeat the previous item of the same user."""
    out = np.zeros(len(users), dtype=bool)
    out[1:] = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
    return out


@dataclass
class Cores:
    """k-core and minimum length on row masks, pass for pass as Importer.cores does it in DuckDB."""

    kcore: int
    min_length: int
    passes: int = 0
    kcore_removed: int = 0
    length_removed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def run(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
        """The mask of rows kept. Each code's count of live rows is kept up to date from the rows that die (few,
        after the first pass), instead of counting every live row again at each step; a step whose codes all
        hold costs no pass over the rows."""
        alive = np.ones(len(users), dtype=bool)
        user_rows = np.bincount(users, minlength=n_users)
        item_rows = np.bincount(items, minlength=n_items)

        def delete(codes: np.ndarray, rows_of: np.ndarray, below: int) -> int:
            """Drop the live rows of codes with fewer than `below` live rows; the number of rows dropped."""
            if below <= 0:
                return 0
            low = (rows_of < below) & (rows_of > 0)
            if not low.any():
                return 0
            gone = np.flatnonzero(low[codes] & alive)
            alive[gone] = False
            user_rows[:] -= np.bincount(users[gone], minlength=n_users)
            item_rows[:] -= np.bincount(items[gone], minlength=n_items)
            return len(gone)

        while self.kcore:
            self.passes += 1
            n = delete(items, item_rows, self.kcore)
            self.kcore_removed += n
            if not n and self.passes > 1:
                break
            n = delete(users, user_rows, self.kcore)
            self.kcore_removed += n
            m = delete(users, user_rows, self.min_length) if self.min_length > self.kcore else 0
            self.length_removed += m
            if not n + m:
                break
        if self.min_length and not self.kcore:
            self.length_removed += delete(users, user_rows, self.min_length)
        return alive


def popularity_order(items: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Item codes by interactions, most first, ties by code (the external id's order); and code -> internal id
    (1..N, 0 for an item left without interactions)."""
    counts = np.bincount(items, minlength=n_items)
    present = np.flatnonzero(counts)
    ranked = present[np.lexsort((present, -counts[present]))]
    new_id = np.zeros(n_items, dtype=np.int32)
    new_id[ranked] = np.arange(1, len(ranked) + 1, dtype=np.int32)
    return ranked, new_id


def write_items(path: Path, items: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<i4", "fortran_order": False, "shape": (len(items),)})
        for chunk in _chunks(items):
            fh.write(np.ascontiguousarray(chunk, dtype="<i4").tobytes())


def write_selected_lines(source: Path, rows: np.ndarray, path: Path) -> int:
    """Lines `rows` (in that order) of a lines file written by dataset.write_lines, copied as bytes."""
    table = dataset.StringTable.from_lines_file(source)
    with open(path, "wb") as fh:
        for k in range(0, len(rows), 1 << 20):
            sel = rows[k : k + (1 << 20)]
            starts, ends = table.starts[sel], table.starts[sel + 1]
            lengths = ends - starts
            # the byte positions of every selected line, one run per line
            run_start = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
            fh.write(np.asarray(table.buffer)[run_start + np.arange(int(lengths.sum()))].tobytes())
    return len(rows)


def length_quantiles(counts: np.ndarray) -> dict[str, int]:
    """p50/p90/p99/max of the sequence lengths, by DuckDB's quantile_disc as the DuckDB path computes them."""
    import duckdb

    lengths = {"n": counts}  # noqa: F841 -- read by DuckDB's replacement scan
    q = duckdb.connect().execute("SELECT quantile_disc(n, 0.5), quantile_disc(n, 0.9), quantile_disc(n, 0.99), "
                                 "max(n) FROM lengths").fetchone() or ()
    return dict(zip(("p50", "p90", "p99", "max"), (int(v) for v in q), strict=True))

