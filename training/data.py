"""Interactions: the authors' files (one user a line: `user item item ...`) or an imported data set directory
(training/dataset.py), leave-one-out splits, and left-padded rows built from the flat arrays batch by batch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from elcrec.model.sequences import left_pad  # noqa: F401  (callers import it from here)
from elcrec.training import dataset


class DataError(Exception):
    """Input data that cannot be used; the message names the file, line and problem."""


@dataclass
class Interactions:
    """All users' sequences as one flat array with offsets (CSR); item ids 1..n_items."""

    users: Sequence[str]  # a list, or a StringTable for an imported data set
    items: np.ndarray  # (total,) int64, or int32 memory-mapped for an imported data set
    offsets: np.ndarray  # (n_users + 1,) int64
    n_items: int
    fingerprint: str
    source: str = ""
    # External id of internal item i at item_ids[i - 1] (imported data sets); None where the ids are the file's
    # own numbers (the authors' files).
    item_ids: Sequence[str] | None = None

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]

    @classmethod
    def from_sequences(
        cls, users: list[str], seqs: list[np.ndarray] | list[list[int]], n_items: int | None = None, source: str = ""
    ) -> Interactions:
        arrays = [np.asarray(s, dtype=np.int64) for s in seqs]
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        max_item = int(items.max()) if len(items) else 0
        n = max_item if n_items is None else n_items
        if len(items) and (items.min() < 1 or max_item > n):
            raise DataError(f"item ids must lie in 1..{n}; found {int(items.min())}..{max_item}")
        digest = hashlib.sha256()
        for user, arr in zip(users, arrays, strict=True):
            digest.update(user.encode() + b" " + " ".join(map(str, arr.tolist())).encode() + b"\n")
        return cls(list(users), items, offsets, n, digest.hexdigest(), source)


def parse_lines(lines: list[str], source: str = "<data>", n_items: int | None = None) -> Interactions:
    users: list[str] = []
    seqs: list[np.ndarray] = []
    seen_users: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if len(fields) < 2:
            continue  # the reference skips users without items
        user, raw = fields[0], fields[1:]
        try:
            seq = np.array([int(x) for x in raw], dtype=np.int64)
        except ValueError:
            bad = next(x for x in raw if not x.lstrip("-").isdigit())
            raise DataError(f"{source}, line {lineno}: item id {bad!r} is not an integer") from None
        if seq.min() < 1:
            raise DataError(f"{source}, line {lineno}: item id {int(seq.min())} is out of range (ids start at 1)")
        if n_items is not None and seq.max() > n_items:
            raise DataError(f"{source}, line {lineno}: item id {int(seq.max())} is out of range (1..{n_items})")
        if user in seen_users:
            raise DataError(f"{source}, line {lineno}: user {user!r} already appeared on line {seen_users[user]}")
        seen_users[user] = lineno
        users.append(user)
        seqs.append(seq)
    if not users:
        raise DataError(f"{source} holds no user with at least one item (expected lines 'user item item ...')")
    return Interactions.from_sequences(users, seqs, n_items, source)


def read_interactions(path: str | Path, n_items: int | None = None) -> Interactions:
    """An authors' file, or a directory written by `elcrec data import` (memory-mapped)."""
    path = Path(path)
    if dataset.is_dataset(path):
        return read_dataset(path, n_items)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"data path {path} is a directory without {dataset.META}: give an interaction file or a "
                        "directory written by `elcrec data import`") from None
    except UnicodeDecodeError:
        raise DataError(f"data file {path} is not text") from None
    if not text.strip():
        raise DataError(f"data file {path} is empty")
    data = parse_lines(text.splitlines(), str(path), n_items)
    data.fingerprint = hashlib.sha256(text.encode()).hexdigest()
    return data


def read_dataset(path: Path, n_items: int | None = None) -> Interactions:
    try:
        meta, offsets, items, users, item_ids = dataset.load_arrays(path)
    except dataset.DatasetError as exc:
        raise DataError(str(exc)) from None
    n = len(item_ids)
    if n_items is not None and n > n_items:
        raise DataError(f"{path} holds {n} items, more than the {n_items} expected")
    return Interactions(users, items, offsets, n_items or n, dataset.fingerprint(meta), str(path), item_ids)


def write_interactions(data: Interactions, path: str | Path) -> None:
    with open(path, "w") as fh:
        for u, user in enumerate(data.users):
            fh.write(user + " " + " ".join(map(str, data.sequence(u).tolist())) + "\n")


class Windows:
    """A (R, T) left-padded int64 matrix built on demand from the flat items: row r holds the last T of
    items[starts[r] + start_shift : ends[r] + end_shift], 0 before. Indexing with rows (an int, a slice, an index
    array) builds only those rows; anything else, and np.asarray, builds the whole matrix (small data, tests)."""

    def __init__(self, items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int,
                 start_shift: int = 0, end_shift: int = 0) -> None:
        self.items, self.starts, self.ends, self.width = items, starts, ends, width
        self.start_shift, self.end_shift = start_shift, end_shift

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.width)

    @property
    def lengths(self) -> np.ndarray:
        """Real (non-padding) entries of each row (R,)."""
        n = (self.ends + self.end_shift) - (self.starts + self.start_shift)
        return np.clip(n, 0, self.width)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), T) int64."""
        end = self.ends[idx].astype(np.int64) + self.end_shift
        first = self.starts[idx].astype(np.int64) + self.start_shift
        pos = end[:, None] - self.width + np.arange(self.width)  # (n, T)
        got = self.items[np.clip(pos, 0, max(len(self.items) - 1, 0))] if len(self.items) else np.zeros(pos.shape)
        return np.where(pos >= first[:, None], got, 0).astype(np.int64)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        full = self.rows(np.arange(len(self)))
        return full if dtype is None else full.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.rows(np.array([key]))[0]
        if isinstance(key, slice):
            return self.rows(np.arange(len(self))[key])
        if isinstance(key, np.ndarray) and key.ndim == 1 and key.dtype != bool:
            return self.rows(key)
        return np.asarray(self)[key]

    def __gt__(self, other: Any) -> np.ndarray:
        return np.asarray(self) > other

    def tolist(self) -> list[list[int]]:
        return np.asarray(self).tolist()  # type: ignore[no-any-return]


class Histories(Sequence[np.ndarray]):
    """Per-row item histories items[starts[r]:ends[r]] as views of the flat items, without a list of arrays."""

    def __init__(self, items: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.items, self.starts, self.ends = items, starts, ends

    def __len__(self) -> int:
        return len(self.ends)

    @overload
    def __getitem__(self, k: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, k: slice) -> list[np.ndarray]: ...
    def __getitem__(self, k: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        return self.items[int(self.starts[k]) : int(self.ends[k])]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def flat(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows lo..hi-1 as (row - lo, item) pairs, without a Python loop: what full-ranking masks need."""
        lengths = (self.ends[lo:hi] - self.starts[lo:hi]).astype(np.int64)
        rows = np.repeat(np.arange(hi - lo), lengths)
        first = np.repeat(self.starts[lo:hi].astype(np.int64) - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return rows, self.items[np.arange(len(rows)) + first].astype(np.int64)


@dataclass
class EvalSplit:
    inputs: np.ndarray | Windows  # (U, T)
    targets: np.ndarray  # (U,)
    seen: Sequence[np.ndarray]  # per user, items to mask (the whole input history, not only the last T)
    users: np.ndarray  # (U,) row index into Interactions


@dataclass
class TrainSplit:
    inputs: Windows  # (R, T)
    targets: Windows  # (R, T), 0 where there is no target
    users: np.ndarray  # (R,) the row's user in Interactions

    @property
    def lengths(self) -> np.ndarray:
        return self.inputs.lengths


def min_length_users(data: Interactions, need: int) -> np.ndarray:
    return np.flatnonzero(data.lengths >= need)


def train_split(data: Interactions, max_len: int) -> TrainSplit:
    """inputs s[:-3], targets s[1:-2]; users with fewer than 4 items have nothing to train on."""
    users = min_length_users(data, 4)
    starts, ends = data.offsets[users], data.offsets[users + 1] - 3
    return TrainSplit(Windows(data.items, starts, ends, max_len),
                      Windows(data.items, starts, ends, max_len, start_shift=1, end_shift=1), users)


def prefix_split(data: Interactions, max_len: int) -> TrainSplit:
    """One row per prefix s[:k] of the training items s[:-2] (k = 1 .. n-3), its next item s[k] the target at the
    last position only; the same targets as train_split, each predicted from a sequence's end."""
    users = min_length_users(data, 4)
    per_user = data.lengths[users] - 3  # prefixes of each user
    owners = np.repeat(users, per_user)
    starts = data.offsets[owners]
    # the k-th prefix of a user ends at start + k (k = 1 .. n - 3)
    first_row = np.concatenate([[0], np.cumsum(per_user)[:-1]]).astype(np.int64)
    ends = starts + 1 + (np.arange(len(owners), dtype=np.int64) - np.repeat(first_row, per_user))
    return TrainSplit(Windows(data.items, starts, ends, max_len),
                      Windows(data.items, ends, ends, max_len, end_shift=1), owners)


def eval_split(data: Interactions, max_len: int, split: str) -> EvalSplit:
    """valid: input s[:-2], target s[-2]; test: input s[:-1], target s[-1]."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    cut = 2 if split == "valid" else 1
    users = min_length_users(data, cut + 1)
    starts, ends = data.offsets[users], data.offsets[users + 1] - cut
    targets = np.asarray(data.items[ends], dtype=np.int64)
    return EvalSplit(Windows(data.items, starts, ends, max_len), targets, Histories(data.items, starts, ends), users)


def row_lengths(inputs: np.ndarray | Windows) -> np.ndarray:
    """Real items in each left-padded row (R,)."""
    return inputs.lengths if isinstance(inputs, Windows) else (inputs > 0).sum(axis=1)
