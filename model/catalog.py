"""The item catalog: what a person reads about an item (its title, its categories), kept with a model version.

A user gives it as CSV/TSV, Parquet or JSON lines with an id column, a title column and any number of categorical
columns (category, brand, genre, ...), read by DuckDB (the engine `elcrec data import` reads logs with). A
categorical value may be several: a JSON list in JSON lines or Parquet, text split at a separator (`|` by default)
in CSV/TSV. Every other column is a categorical field.

The stored form (`catalog.jsonl` in the version directory, checksummed in its manifest: model/artifact.py) is
normalised: one JSON object per item, `{"id": str, "title": str | null, FIELD: [str, ...], ...}` with every field
present (an empty list where the item has no value), in the order of the file given. It is itself a valid catalog
(id column "id", title column "title").

`ItemCategories` is the catalog as arrays over a model's item rows, what the intent labels and their coherence are
computed from (model/intent_labels.py, training/intent_health.py).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ID, TITLE = "id", "title"  # the stored form's column names, and the columns read unless others are named
MULTI_SEP = "|"  # in CSV/TSV catalogs, what separates several values in one cell unless told otherwise
FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".json": "jsonl"}


class CatalogError(ValueError):
    """A catalog that cannot be used; the message names the file and, where it is one row, the row."""


@dataclass(frozen=True)
class Catalog:
    ids: tuple[str, ...]
    titles: tuple[str | None, ...]
    fields: tuple[str, ...]  # the categorical fields, in the file's column order
    values: dict[str, tuple[tuple[str, ...], ...]]  # field -> each item's values (in `ids` order)
    source: str  # the file's name, as given

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.titles) != n or set(self.values) != set(self.fields) or any(
                len(v) != n for v in self.values.values()):
            raise ValueError("a catalog needs one title and one value tuple per field for every id")

    def __len__(self) -> int:
        return len(self.ids)

    def record(self, i: int) -> dict[str, Any]:
        """Item i in the stored form."""
        return {ID: self.ids[i], TITLE: self.titles[i], **{f: list(self.values[f][i]) for f in self.fields}}

    def to_jsonl(self) -> str:
        with _no_gc():
            return "".join(json.dumps(self.record(i), ensure_ascii=False) + "\n" for i in range(len(self.ids)))

    def describe(self) -> dict[str, Any]:
        """What the manifest says of it."""
        return {"items": len(self.ids), "fields": list(self.fields), "source": self.source}


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused while millions of small containers (one per item and value) are made,
    none of them cyclic: otherwise it walks them again and again, and parsing a stored catalog of a million items
    takes several times as long (docs/SERVING.md, *Intents in the API*)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _format(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CatalogError(f"{path}: cannot tell the catalog's format from its name; use .csv, .tsv, .parquet or "
                           ".jsonl")
    return kind


def _rows(path: Path, kind: str) -> tuple[list[str], list[tuple[Any, ...]], list[str]]:
    """(column names, rows in file order, DuckDB type names), with the file's own values."""
    import duckdb

    query = {
        "csv": "SELECT * FROM read_csv(?, header = true, all_varchar = true, delim = ',')",
        "tsv": "SELECT * FROM read_csv(?, header = true, all_varchar = true, delim = '\t', quote = '')",
        "parquet": "SELECT * FROM read_parquet(?)",
        "jsonl": "SELECT * FROM read_json(?, format = 'newline_delimited')",
    }[kind]
    try:
        with duckdb.connect() as con:
            con.execute("SET preserve_insertion_order = true")
            cursor = con.execute(query, [str(path)])
            columns = [d[0] for d in cursor.description]
            types = [str(d[1]) for d in cursor.description]
            return columns, cursor.fetchall(), types
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CatalogError(f"{path}: cannot read it as {kind}: {first}") from exc


def _plain(value: Any, json_typed: bool) -> Any:
    """A cell as a Python value: JSON-typed columns (mixed types in JSON lines) come back as JSON text."""
    if json_typed and isinstance(value, str):
        return json.loads(value)
    return value


def _scalar_text(value: Any) -> str | None:
    """A categorical scalar as text: strings as they are, integers and booleans as JSON writes them."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def read_catalog(
    path: str | Path, id_column: str = ID, title_column: str = TITLE, multi_sep: str = MULTI_SEP,
    fields: Sequence[str] = (),
) -> Catalog:
    """Read and check a catalog file (module docstring). Raises CatalogError naming the file and the row: a missing
    id or title column, an empty or duplicate id, a title that is not text, a value that is neither text nor a
    list of text. Rows are numbered from 1 as data rows (in CSV/TSV, row n is line n + 1, after the header).
    `fields` picks the categorical fields, each "NAME=COLUMN" (renamed) or "COLUMN"; none: every other column."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog file {path} does not exist")
    if not multi_sep:
        raise CatalogError("the multi-value separator must not be empty")
    kind = _format(path)
    with _no_gc():
        return _checked(path, kind, id_column, title_column, multi_sep, fields)


def _field_columns(path: Path, columns: list[str], id_column: str, title_column: str,
                   picked: Sequence[str]) -> dict[str, str]:
    """Categorical field name -> its column: the picked ones ("NAME=COLUMN" or "COLUMN"), else every other column."""
    if not picked:
        return {c: c for c in columns if c not in (id_column, title_column)}
    chosen: dict[str, str] = {}
    for entry in picked:
        name, _, column = entry.partition("=") if "=" in entry else (entry, "", entry)
        if column not in columns:
            raise CatalogError(f"{path} has no column {column!r} for the field {name!r} (its columns: "
                               f"{', '.join(columns)})")
        chosen[name.strip()] = column
    return chosen


def _checked(path: Path, kind: str, id_column: str, title_column: str, multi_sep: str,
             picked: Sequence[str] = ()) -> Catalog:
    columns, rows, types = _rows(path, kind)
    for name, what in ((id_column, "id"), (title_column, "title")):
        if name not in columns:
            raise CatalogError(f"{path} has no {what} column {name!r} (its columns: {', '.join(columns)}); name "
                               f"it with --{what}-column")
    column_of = _field_columns(path, columns, id_column, title_column, picked)
    fields = list(column_of)
    for f in fields:
        if f in (ID, TITLE) or not f or ":" in f or "," in f:
            raise CatalogError(f"{path}: {f!r} cannot name a categorical field (the names 'id' and 'title' are the "
                               "stored form's, and ':' and ',' separate fields in requests): rename it with "
                               "--field NAME=COLUMN")
    where = {c: i for i, c in enumerate(columns)}
    where.update({f: where[c] for f, c in column_of.items()})
    json_typed = {c: types[i] == "JSON" for c, i in where.items()}
    split = kind in ("csv", "tsv")
    ids: list[str] = []
    titles: list[str | None] = []
    values: dict[str, list[tuple[str, ...]]] = {f: [] for f in fields}
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, start=1):
        at = f"{path} row {n}" + (f" (line {n + 1})" if split else "")
        raw_id = _plain(row[where[id_column]], json_typed[id_column])
        item = raw_id if isinstance(raw_id, str) else (
            str(raw_id) if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None)
        if item is None or not item.strip():
            raise CatalogError(f"{at}: the id ({id_column!r}) is empty or not text: {raw_id!r}")
        if item in seen:
            raise CatalogError(f"{at}: id {item!r} again (first on row {seen[item]})")
        seen[item] = n
        title = _plain(row[where[title_column]], json_typed[title_column])
        if title is not None and not isinstance(title, str):
            raise CatalogError(f"{at}: the title ({title_column!r}) of {item!r} is not text: {title!r}")
        ids.append(item)
        titles.append(title.strip() or None if title is not None else None)
        for f in fields:
            cell = _plain(row[where[f]], json_typed[f])
            got: list[str] = []
            for v in cell if isinstance(cell, list | tuple) else [] if cell is None else [cell]:
                text = _scalar_text(v) if v is not None else ""
                if text is None:
                    raise CatalogError(f"{at}: field {f!r} of {item!r} holds {v!r}; a categorical value is text "
                                       "(or a list of text)")
                got.extend(text.split(multi_sep) if split else [text])
            values[f].append(tuple(dict.fromkeys(t for v in got if (t := v.strip()))))
    if not ids:
        raise CatalogError(f"{path} has no items")
    return Catalog(tuple(ids), tuple(titles), tuple(fields), {f: tuple(v) for f, v in values.items()}, path.name)


def read_stored(path: Path, fields: list[str], source: str) -> Catalog:
    """A catalog in the stored form (written by Catalog.to_jsonl), its fields as the manifest lists them.
    Raises CatalogError for anything else. Parsed as one JSON document and checked by columns: a service loads
    a million items in seconds."""
    try:
        with _no_gc():
            return _stored(path, fields, source)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, CatalogError):
            raise
        raise CatalogError(f"{path} is not a stored catalog: {exc}") from exc


def _stored(path: Path, fields: list[str], source: str) -> Catalog:
    text = path.read_text(encoding="utf-8")
    # "\n" alone ends an item: str.splitlines would also split at U+2028 inside a title (written unescaped)
    records = json.loads("[" + ",".join(line for line in text.split("\n") if line) + "]")
    ids = [r[ID] for r in records]
    titles = [r[TITLE] for r in records]
    values = {f: [r[f] for r in records] for f in fields}
    keys = {ID, TITLE, *fields}
    if not all(len(r) == len(keys) for r in records):
        raise ValueError(f"an item has other fields than {sorted(keys)}")
    if not all(isinstance(i, str) for i in ids) or not all(t is None or isinstance(t, str) for t in titles):
        raise ValueError("an id or a title is not text")
    if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for col in values.values() for v in col):
        raise ValueError("a field's value is not a list of text")
    if len(set(ids)) != len(ids):
        raise ValueError("an id appears twice")
    return Catalog(tuple(ids), tuple(titles), tuple(fields), {f: tuple(map(tuple, v)) for f, v in values.items()},
                   source)


def covered(catalog: Catalog, item_ids: list[str | None]) -> int:
    """How many of a model's items (row -> external id) the catalog knows."""
    known = set(catalog.ids)
    return sum(1 for i in item_ids if i is not None and i in known)


@dataclass(frozen=True)
class ItemCategories:
    """The catalog over a model's N real items (0-based columns: table row r is column r - 1): for each item the
    (field, value) pairs it holds, as CSR arrays, and whether the catalog knows it."""

    values: tuple[tuple[str, str], ...]  # V (field, value) pairs
    indptr: np.ndarray  # (N + 1,) item c holds values[indices[indptr[c]:indptr[c + 1]]]
    indices: np.ndarray  # (P,) value ids
    known: np.ndarray  # (N,) bool
    titles: tuple[str | None, ...]  # (N,) None where unknown or untitled

    @property
    def n_items(self) -> int:
        return len(self.known)

    def field_ids(self, field: str) -> np.ndarray:
        """Value ids of one field."""
        return np.array([v for v, (f, _) in enumerate(self.values) if f == field], dtype=np.int64)


def item_categories(catalog: Catalog, item_ids: list[str | None]) -> ItemCategories:
    """The catalog over the items of a model whose table rows have these external ids (rows 0 and N + 1: none).
    Built by columns (numpy), not item by item: a million items take seconds."""
    with _no_gc():
        return _categories(catalog, item_ids)


def _categories(catalog: Catalog, item_ids: list[str | None]) -> ItemCategories:
    where = {item: i for i, item in enumerate(catalog.ids)}
    pos = np.array([where.get(ext, -1) if ext is not None else -1 for ext in item_ids[1:-1]], dtype=np.int64)
    value_id: dict[tuple[str, str], int] = {}
    owners, codes = [], []  # per field: the catalog position and the value id of every (item, value) held
    for f in catalog.fields:
        column = catalog.values[f]
        lengths = np.fromiter((len(v) for v in column), dtype=np.int64, count=len(column))
        held = list(itertools.chain.from_iterable(column))
        names = {v: value_id.setdefault((f, v), len(value_id)) for v in dict.fromkeys(held)}  # first seen first
        owners.append(np.repeat(np.arange(len(column)), lengths))
        codes.append(np.fromiter(map(names.__getitem__, held), dtype=np.int64, count=len(held)))
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    code = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
    order = np.argsort(owner, kind="stable")  # by catalog position, fields in order within an item
    owner, code = owner[order], code[order]
    starts = np.searchsorted(owner, np.arange(len(catalog)), side="left")
    ends = np.searchsorted(owner, np.arange(len(catalog)), side="right")
    known = pos >= 0
    # the model's columns in order: each known one's slice of the catalog's pairs
    lengths = np.where(known, (ends - starts)[np.maximum(pos, 0)], 0)
    first = starts[np.maximum(pos, 0)]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    gather = np.repeat(first - indptr[:-1], lengths) + np.arange(int(indptr[-1]))
    titles = tuple(catalog.titles[p] if p >= 0 else None for p in pos.tolist())
    return ItemCategories(tuple(value_id), indptr.astype(np.int64), code[gather], known, titles)
