"""Interaction files (one user a line: `user item item ...`), leave-one-out splits and padded arrays."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.sequences import left_pad  # noqa: F401  (the splits below use it; callers import it from here too)


class DataError(Exception):
    """Input data that cannot be used; the message names the file, line and problem."""


@dataclass
class Interactions:
    """All users' sequences as one flat array with offsets (CSR); item ids 1..n_items."""

    users: list[str]
    items: np.ndarray  # (total,) int64
    offsets: np.ndarray  # (n_users + 1,) int64
    n_items: int
    fingerprint: str
    source: str = ""

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
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"data path {path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise DataError(f"data file {path} is not text") from None
    if not text.strip():
        raise DataError(f"data file {path} is empty")
    data = parse_lines(text.splitlines(), str(path), n_items)
    data.fingerprint = hashlib.sha256(text.encode()).hexdigest()
    return data


def write_interactions(data: Interactions, path: str | Path) -> None:
    with open(path, "w") as fh:
        for u, user in enumerate(data.users):
            fh.write(user + " " + " ".join(map(str, data.sequence(u).tolist())) + "\n")


@dataclass
class EvalSplit:
    inputs: np.ndarray  # (U, T)
    targets: np.ndarray  # (U,)
    seen: list[np.ndarray]  # per user, items to mask (the whole input history, not only the last T)
    users: np.ndarray  # (U,) row index into Interactions


@dataclass
class TrainSplit:
    inputs: np.ndarray  # (U, T)
    targets: np.ndarray  # (U, T), 0 where there is no target
    users: np.ndarray  # (U,)


def min_length_users(data: Interactions, need: int) -> np.ndarray:
    return np.flatnonzero(data.lengths >= need)


def train_split(data: Interactions, max_len: int) -> TrainSplit:
    """inputs s[:-3], targets s[1:-2]; users with fewer than 4 items have nothing to train on."""
    users = min_length_users(data, 4)
    seqs = [data.sequence(u) for u in users]
    return TrainSplit(
        left_pad([s[:-3] for s in seqs], max_len), left_pad([s[1:-2] for s in seqs], max_len), users
    )


def prefix_split(data: Interactions, max_len: int) -> TrainSplit:
    """One row per prefix s[:k] of the training items s[:-2] (k = 1 .. n-3), its next item s[k] the target at the
    last position only; the same targets as train_split, each predicted from a sequence's end."""
    users = min_length_users(data, 4)
    rows, last, owners = [], [], []
    for u in users:
        s = data.sequence(u)[:-2]
        for k in range(1, len(s)):
            rows.append(s[:k])
            last.append(s[k])
            owners.append(u)
    targets = np.zeros((len(rows), max_len), dtype=np.int64)
    targets[:, -1] = last
    return TrainSplit(left_pad(rows, max_len), targets, np.asarray(owners, dtype=np.int64))


def eval_split(data: Interactions, max_len: int, split: str) -> EvalSplit:
    """valid: input s[:-2], target s[-2]; test: input s[:-1], target s[-1]."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    cut = 2 if split == "valid" else 1
    users = min_length_users(data, cut + 1)
    seqs = [data.sequence(u) for u in users]
    history = [s[:-cut] for s in seqs]
    targets = np.array([s[-cut] for s in seqs], dtype=np.int64)
    return EvalSplit(left_pad(history, max_len), targets, history, users)
