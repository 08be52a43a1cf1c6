"""The imported data set format: a directory that `elcrec data import` writes and read_interactions reads.

    DIR/dataset.json   format name and version, counts, source files, column mapping, filters, the import summary,
                       sha256 of each array file
    DIR/offsets.npy    int64 (U + 1,): user u's items are items[offsets[u]:offsets[u + 1]], in time order
    DIR/items.npy      int32 (total,): internal item ids 1..N
    DIR/users.txt      external user id of row u on line u + 1
    DIR/item_ids.txt   external id of internal item i on line i (i = 1..N)

Arrays load as memory maps, external ids as one byte buffer with line offsets (StringTable), so a data set of 100 M
interactions and 5 M users loads in seconds without a Python object per row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from elcrec.model.artifact import sha256_file
from elcrec.model.catalog import Catalog, CatalogError, read_stored

FORMAT = "elcrec-dataset"
VERSION = 1
META = "dataset.json"
OFFSETS = "offsets.npy"
ITEMS = "items.npy"
USERS = "users.txt"
ITEM_IDS = "item_ids.txt"
HASHED = (OFFSETS, ITEMS, USERS, ITEM_IDS)
CATALOG = "catalog.jsonl"  # optional: the item catalog given at import, in the stored form (model/catalog.py)


class DatasetError(Exception):
    """A data set directory that cannot be read; the message names the file and the problem."""


class StringTable(Sequence[str]):
    """Strings held as one UTF-8 buffer and offsets ((n + 1,) int64): a few bytes a string instead of a Python
    object each. Indexing decodes one string; a slice gives a list."""

    def __init__(self, buffer: np.ndarray, starts: np.ndarray) -> None:
        self.buffer = buffer  # (bytes,) uint8
        self.starts = starts  # (n + 1,) int64; string k is buffer[starts[k] : starts[k + 1] - 1] (minus its "\n")

    @classmethod
    def from_lines_file(cls, path: Path) -> StringTable:
        """Every line of a file that ends each line with "\\n", the file memory-mapped."""
        size = path.stat().st_size
        buffer = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, dtype=np.uint8)
        if size and buffer[-1] != ord("\n"):
            raise DatasetError(f"{path} does not end with a newline (a truncated file?)")
        ends = np.flatnonzero(buffer == ord("\n")) + 1
        return cls(buffer, np.concatenate([[0], ends]).astype(np.int64))

    def __len__(self) -> int:
        return len(self.starts) - 1

    @overload
    def __getitem__(self, k: int) -> str: ...
    @overload
    def __getitem__(self, k: slice) -> list[str]: ...
    def __getitem__(self, k: int | slice) -> str | list[str]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        n = len(self)
        if not -n <= k < n:
            raise IndexError(f"string {k} of {n}")
        k %= n
        return bytes(self.buffer[self.starts[k] : self.starts[k + 1] - 1]).decode()

    def __iter__(self) -> Iterator[str]:
        step = 1 << 16  # strings decoded a block at a time
        for lo in range(0, len(self), step):
            hi = min(lo + step, len(self))
            yield from bytes(self.buffer[self.starts[lo] : self.starts[hi]]).decode().split("\n")[:-1]


def write_lines(path: Path, strings: Iterable[str], what: str) -> int:
    """One string a line; a string with a line break cannot be stored (it would read back as two)."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for s in strings:
            if "\n" in s or "\r" in s:
                raise DatasetError(f"{what} {s!r} holds a line break, which the data set format cannot store")
            fh.write(s + "\n")
            n += 1
    return n




def write_meta(directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """dataset.json with the format, the given fields and the sha256 of each array file (written last: a directory
    without it is no data set)."""
    full = {"format": FORMAT, "version": VERSION, **meta,
            "sha256": {name: sha256_file(directory / name) for name in HASHED}}
    (directory / META).write_text(json.dumps(full, indent=2) + "\n")
    return full


def is_dataset(path: Path) -> bool:
    return path.is_dir() and (path / META).is_file()


def fingerprint(meta: dict[str, Any]) -> str:
    """One digest of the data set from the files' digests in dataset.json, not from hashing the arrays at each load."""
    hashes = meta["sha256"]
    return hashlib.sha256(json.dumps([hashes[name] for name in HASHED]).encode()).hexdigest()


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} cannot be read as JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DatasetError(f"{path} is not an {FORMAT} description (its format is {meta.get('format')!r})"
                           if isinstance(meta, dict) else f"{path} is not an {FORMAT} description")
    if meta.get("version") != VERSION:
        raise DatasetError(f"{path} has format version {meta.get('version')!r}; this elcrec reads version {VERSION}")
    missing = [k for k in ("users", "items", "interactions", "sha256") if k not in meta]
    if missing:
        raise DatasetError(f"{path} lacks {', '.join(missing)}")
    return meta


def load_arrays(directory: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray, StringTable, StringTable]:
    """(meta, offsets, items, users, item_ids), arrays memory-mapped, their shapes checked against the counts."""
    meta = read_meta(directory)
    def array(name: str) -> np.ndarray:
        try:
            return np.load(directory / name, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{directory / name} is not a readable .npy array: {exc}") from None

    def lines(name: str) -> StringTable:
        try:
            return StringTable.from_lines_file(directory / name)
        except OSError as exc:
            raise DatasetError(f"{directory / name} cannot be read: {exc}") from None

    offsets, items = array(OFFSETS), array(ITEMS)
    users, item_ids = lines(USERS), lines(ITEM_IDS)
    n_users, n_items, total = int(meta["users"]), int(meta["items"]), int(meta["interactions"])
    checks = [
        (OFFSETS, offsets.dtype == np.int64 and offsets.shape == (n_users + 1,), f"int64 ({n_users + 1},)",
         f"{offsets.dtype} {offsets.shape}"),
        (ITEMS, items.dtype == np.int32 and items.shape == (total,), f"int32 ({total},)", f"{items.dtype} {items.shape}"),
        (USERS, len(users) == n_users, f"{n_users} lines", f"{len(users)}"),
        (ITEM_IDS, len(item_ids) == n_items, f"{n_items} lines", f"{len(item_ids)}"),
        (OFFSETS, n_users == 0 or (offsets[0] == 0 and offsets[-1] == total), f"0 .. {total}",
         f"{offsets[0]} .. {offsets[-1]}" if n_users else ""),
    ]
    for name, ok, want, got in checks:
        if not ok:
            raise DatasetError(f"{directory / name} does not match {META}: expected {want}, found {got}")
    return meta, offsets, items, users, item_ids


def read_catalog(directory: Path) -> Catalog | None:
    """The catalog given at import (`elcrec data import --catalog`), checked against its sha256; None: none given."""
    meta = read_meta(directory)
    entry = meta.get("catalog")
    if not isinstance(entry, dict):
        return None
    path = directory / CATALOG
    try:
        if sha256_file(path) != entry.get("sha256"):
            raise DatasetError(f"{path} does not match the sha256 in {directory / META}: the file was changed")
        return read_stored(path, list(entry["fields"]), str(entry["source"]))
    except (OSError, KeyError, TypeError, CatalogError) as exc:
        raise DatasetError(f"the catalog of {directory} cannot be read: {exc}") from None
