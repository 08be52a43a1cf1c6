"""The in-memory half of `elcrec data import` (training/importer.py): once DuckDB has read the log and numbered
the distinct user and item ids, the rows are three numpy arrays (user code, item code, time) in log order, and the
steps that cost most on strings in DuckDB (the k-core's group-bys, the sort by user, time and position) run here
on integers: a k-core pass is two `np.bincount`s, the order one stable argsort of an int64 key.

Codes: users and items are numbered by their external id's order (DuckDB's `ORDER BY`), so a user's code is its
row in `users.txt` before the filters, and an item's code breaks popularity ties as `ORDER BY n DESC, i` does.
Rows reach their codes through `HashIndex`: DuckDB's 64-bit `hash()` of the id, looked up in an open-addressing
table of the distinct ids' hashes (checked free of collisions before use), instead of a join on strings.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elcrec.training import dataset

# What the arrays cost per row at their peak (the argsort): item codes (4), the int64 sort key (8, which holds the
# user), the rows of each half (4), the permutation (8) and the stable sort's buffer (up to 4).
BYTES_PER_ROW = 28
# While they are fetched DuckDB still holds the log: user and item codes and the time (4 + 4 + 8).
FETCHED_BYTES_PER_ROW = 16
CHUNK = 8_000_000  # rows a numpy temporary covers at most
SPLIT_ROWS = 1_000_000  # from here on the sort runs in two halves on two threads
FETCH_ROWS = 2_000_000  # rows fetched from DuckDB at a time
FETCH_OVERHEAD = 400 * 10**6  # a fetch's temporaries: DuckDB's result, its numpy copy, the lookups' indices


class HashIndex:
    """Distinct 64-bit keys -> their position in `keys`, by linear probing in a table at most half full."""

    def __init__(self, keys: np.ndarray) -> None:
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        bits = self.bits_for(len(keys))
        self.mask = np.uint64((1 << bits) - 1)
        self.keys = np.zeros(1 << bits, dtype=np.uint64)
        self.codes = np.full(1 << bits, -1, dtype=np.int32)
        slot = (keys & self.mask).astype(np.intp)
        pending = np.arange(len(keys), dtype=np.intp)
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

    def sort(self) -> None:
        """Order by user, then time, then position in the log: a stable argsort of an int64 key (user, time) over
        rows in log order. The key holds the user, so the user codes go before the argsort and come back from the
        key after it. From SPLIT_ROWS rows on, the users below the median row and the others are sorted apart, on
        two threads (numpy sorts without the GIL), and put end to end. The peak is BYTES_PER_ROW."""
        n = len(self.users)
        n_users = int(self.users.max()) + 1 if n else 1
        ubits = max(1, (n_users - 1).bit_length())
        split = n_users
        if n >= SPLIT_ROWS:
            split = int(np.searchsorted(np.cumsum(np.bincount(self.users, minlength=n_users)), n // 2)) + 1
        if self.times is None:
            key, tbits = self.users.astype(np.int64), 0
        else:
            # a rank takes at most 31 bits below 2^31 rows, so with the user it fits in 63
            key, tbits = time_rank(self.times, 63 - ubits)
            self.times = None
            for k in range(0, n, CHUNK):
                key[k : k + CHUNK] |= self.users[k : k + CHUNK].astype(np.int64) << tbits
        self.users = np.empty(0, dtype=np.int32)
        parts: list[tuple[np.ndarray | None, np.ndarray]] = [(None, key)]  # (rows of the part or all, their keys)
        if split < n_users:
            low = key < (split << tbits)
            index = np.int32 if n < 2**31 else np.int64
            rows = [np.flatnonzero(low).astype(index), np.flatnonzero(~low).astype(index)]
            del low
            parts = [(r, key[r]) for r in rows]
            del key, rows
        with ThreadPoolExecutor(len(parts)) as pool:
            orders = list(pool.map(lambda part: np.argsort(part[1], kind="stable"), parts))
        users = np.empty(n, dtype=np.int32)
        at = 0
        for k, order in enumerate(orders):
            part_key = parts[k][1]
            for lo in range(0, len(order), CHUNK):
                o = order[lo : lo + CHUNK]
                users[at + lo : at + lo + len(o)] = part_key[o] >> tbits
            parts[k] = (parts[k][0], np.empty(0, dtype=np.int64))  # the key is done with
            at += len(order)
        del part_key
        items = np.empty(n, dtype=np.int32)
        at = 0
        for (rows_of, _), order in zip(parts, orders, strict=True):
            for lo in range(0, len(order), CHUNK):
                o = order[lo : lo + CHUNK]
                items[at + lo : at + lo + len(o)] = self.items[o if rows_of is None else rows_of[o]]
            at += len(order)
        self.users, self.items = users, items

    def keep(self, mask: np.ndarray) -> None:
        self.users, self.items = self.users[mask], self.items[mask]


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
        """The mask of rows kept."""
        alive = np.ones(len(users), dtype=bool)

        def delete(codes: np.ndarray, n: int, below: int) -> int:
            if below <= 0:
                return 0
            counts = np.bincount(codes[alive], minlength=n)
            gone = alive & (counts[codes] < below)
            k = int(gone.sum())
            if k:
                alive[gone] = False
            return k

        while self.kcore:
            self.passes += 1
            n = delete(items, n_items, self.kcore)
            self.kcore_removed += n
            if not n and self.passes > 1:
                break
            n = delete(users, n_users, self.kcore)
            self.kcore_removed += n
            m = delete(users, n_users, self.min_length) if self.min_length > self.kcore else 0
            self.length_removed += m
            if not n + m:
                break
        if self.min_length and not self.kcore:
            self.length_removed += delete(users, n_users, self.min_length)
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

