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

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ID, TITLE = "id", "title"  # the stored form's column names
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
        return "".join(json.dumps(self.record(i), ensure_ascii=False) + "\n" for i in range(len(self.ids)))

    def describe(self) -> dict[str, Any]:
        """What the manifest says of it."""
        return {"items": len(self.ids), "fields": list(self.fields), "source": self.source}


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
    path: str | Path, id_column: str = ID, title_column: str = TITLE, multi_sep: str = "|"
) -> Catalog:
    """Read and check a catalog file (module docstring). Raises CatalogError naming the file and the row: a missing
    id or title column, an empty or duplicate id, a title that is not text, a value that is neither text nor a
    list of text. Rows are numbered from 1 as data rows (in CSV/TSV, row n is line n + 1, after the header)."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog file {path} does not exist")
    if not multi_sep:
        raise CatalogError("the multi-value separator must not be empty")
    kind = _format(path)
    columns, rows, types = _rows(path, kind)
    for name, what in ((id_column, "id"), (title_column, "title")):
        if name not in columns:
            raise CatalogError(f"{path} has no {what} column {name!r} (its columns: {', '.join(columns)}); name "
                               f"it with --{what}-column")
    fields = [c for c in columns if c not in (id_column, title_column)]
    for f in fields:
        if f in (ID, TITLE) or not f or ":" in f or "," in f:
            raise CatalogError(f"{path}: column {f!r} cannot be a categorical field (the names 'id' and 'title' "
                               "are the stored form's, and ':' and ',' separate fields in requests): rename it")
    where = {c: i for i, c in enumerate(columns)}
    json_typed = {c: types[where[c]] == "JSON" for c in columns}
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
    Raises CatalogError for anything else."""
    ids: list[str] = []
    titles: list[str | None] = []
    values: dict[str, list[tuple[str, ...]]] = {f: [] for f in fields}
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                rec = json.loads(line)
                title = rec[TITLE]
                if not isinstance(rec[ID], str) or not (title is None or isinstance(title, str)) or set(rec) != {
                        ID, TITLE, *fields}:
                    raise ValueError(f"line {n} is not an item of the stored form with fields {fields}")
                ids.append(rec[ID])
                titles.append(title)
                for f in fields:
                    if not isinstance(rec[f], list) or not all(isinstance(v, str) for v in rec[f]):
                        raise ValueError(f"line {n}: field {f!r} is not a list of text")
                    values[f].append(tuple(rec[f]))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CatalogError(f"{path} is not a stored catalog: {exc}") from exc
    if len(set(ids)) != len(ids):
        raise CatalogError(f"{path} is not a stored catalog: an id appears twice")
    return Catalog(tuple(ids), tuple(titles), tuple(fields), {f: tuple(v) for f, v in values.items()}, source)


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

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(item columns (P,), value ids (P,)): every (item, value) held."""
        return np.repeat(np.arange(self.n_items), np.diff(self.indptr)), self.indices


def item_categories(catalog: Catalog, item_ids: list[str | None]) -> ItemCategories:
    """The catalog over the items of a model whose table rows have these external ids (rows 0 and N + 1: none)."""
    where = {item: i for i, item in enumerate(catalog.ids)}
    value_id: dict[tuple[str, str], int] = {}
    indptr = [0]
    indices: list[int] = []
    known: list[bool] = []
    titles: list[str | None] = []
    for ext in item_ids[1:-1]:
        i = where.get(ext) if ext is not None else None
        known.append(i is not None)
        titles.append(catalog.titles[i] if i is not None else None)
        if i is not None:
            for f in catalog.fields:
                for v in catalog.values[f][i]:
                    indices.append(value_id.setdefault((f, v), len(value_id)))
        indptr.append(len(indices))
    return ItemCategories(tuple(value_id), np.array(indptr, dtype=np.int64), np.array(indices, dtype=np.int64),
                          np.array(known, dtype=bool), tuple(titles))
