"""`elcrec data import`: interaction logs (CSV/TSV, Parquet, JSON lines; files, directories of parts, globs) into a
data set directory (training/dataset.py), with DuckDB.

The steps (docs/IMPORT.md has the engine choice and the measurements):

1. read every file in order into one DuckDB table (user, item, time, keep), its row id the row's position in the
   log (files in the order given, a directory's or glob's files by name, then rows in file order);
2. check times and ratings (the first bad one is reported with its file, row and column), count the rows the
   rating/event filter drops and the rows without a user or item id;
3. keep the rows that pass the filter and have both ids;
4. optionally drop consecutive repeats of an item in a user's sequence, then the k-core and the minimum length;
5. number the items by popularity, sort each user's items by time then position, write the arrays.

Steps 4 and 5 run one of two ways, chosen by the rows kept (`Summary.path` says which): where their integer arrays
fit in the memory limit, in memory on numpy arrays of user and item codes (training/import_arrays.py), DuckDB
closed; beyond it, as DuckDB statements on the strings, which spill to a temporary directory beside the output, so
that a log larger than memory still imports. Both write the same bytes.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from elcrec.model.catalog import Catalog
from elcrec.training import dataset
from elcrec.training import import_arrays as arrays
from elcrec.training.data import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl"}
COMPRESSED = (".gz", ".zst")
DEFAULT_MEMORY_LIMIT = "3GB"  # DuckDB's limit and the in-memory arrays' bound: a 100 M-row import peaks under 4 GiB (docs/IMPORT.md)
FETCH_ROWS = 8_000_000  # interactions written per chunk: 32 MB of int32
LINE_ROWS = 100_000


@dataclass(frozen=True)
class ImportSpec:
    user: str
    item: str
    time: str | None = None
    rating: str | None = None
    min_rating: float | None = None
    event: str | None = None
    events: tuple[str, ...] = ()
    kcore: int = 0
    min_length: int = 0
    dedupe_consecutive: bool = False

    def check(self) -> None:
        if (self.rating is None) != (self.min_rating is None):
            raise DataError("--rating and --min-rating go together: the column and the lowest rating kept")
        if (self.event is None) != (not self.events):
            raise DataError("--event and --events go together: the column and the event types kept")
        if self.kcore < 0 or self.min_length < 0:
            raise DataError("--kcore and --min-length must be >= 0")

    def columns(self) -> dict[str, str]:
        named = {"user": self.user, "item": self.item, "time": self.time, "rating": self.rating, "event": self.event}
        return {k: v for k, v in named.items() if v is not None}


@dataclass(frozen=True)
class Engine:
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    threads: int | None = None  # DuckDB's and the sort's; default: every core
    in_memory: bool | None = None  # steps 4-5 on numpy arrays; None: where they fit in memory_limit


SIZE_UNITS = {"": 1, "b": 1, "byte": 1, "bytes": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
              "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int | None:
    """Bytes of a size as DuckDB reads memory_limit ('3GB' = 3 * 10^9, '2GiB' = 2 * 2^30); None if it is none."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = SIZE_UNITS.get(m.group(2).lower()) if m else None
    return int(float(m.group(1)) * unit) if m and unit else None


@dataclass
class Source:
    path: Path
    format: str
    rows: int = 0
    first_row: int = 0  # position of its first row in the log
    columns: list[str] | None = None  # JSON lines: the columns found, all read as text


@dataclass
class Summary:
    rows_read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    users: int = 0
    items: int = 0
    interactions: int = 0
    length: dict[str, int] = field(default_factory=dict)
    kcore_passes: int = 0
    path: str = ""  # where the k-core and the sort ran: in memory or DuckDB (out of core), and why
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        rate = f" ({self.rows_read / self.seconds:,.0f} rows/s)" if self.seconds else ""
        out = [f"read {self.rows_read:,} rows in {self.seconds:.1f}s{rate}"]
        out += [f"  dropped by {name}: {n:,}" for name, n in self.dropped.items()]
        out.append(f"{self.users:,} users, {self.items:,} items, {self.interactions:,} interactions")
        out.append("sequence length " + ", ".join(f"{k} {v}" for k, v in self.length.items()))
        if self.path:
            out.append(f"k-core and order: {self.path}")
        return out


def resolve_sources(logs: list[Path]) -> list[Source]:
    """Files of each LOG in the order given; a directory's files (recursively) and a glob's matches by name."""
    out: list[Source] = []
    for log in logs:
        text = str(log)
        if any(c in text for c in "*?["):
            files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not files:
                raise DataError(f"{log} matches no file")
        elif log.is_dir():
            files = sorted((p for p in log.rglob("*") if p.is_file() and _format(p) is not None),
                           key=lambda p: str(p.relative_to(log)))
            if not files:
                raise DataError(f"{log} holds no CSV, TSV, Parquet or JSON lines file ({', '.join(FORMATS)})")
        elif log.is_file():
            files = [log]
        else:
            raise DataError(f"{log} does not exist")
        for f in files:
            fmt = _format(f)
            if fmt is None:
                raise DataError(f"{f}: unknown format; name the file by its format ({', '.join(FORMATS)}, "
                                f"optionally compressed {', '.join(COMPRESSED)})")
            out.append(Source(f, fmt))
    return out


def _format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    return FORMATS.get(suffixes[-1]) if suffixes else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _reader(src: Source, columns: list[str] | None = None) -> str:
    """The DuckDB table function reading a source; JSON lines with `columns` read every column as text (a type
    sniffed from the first rows can be wrong further down, as with CSV)."""
    path = _literal(str(src.path))
    if src.format == "parquet":
        return f"read_parquet({path})"
    if src.format == "jsonl":
        as_text = ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in columns or [])
        return f"read_json({path}, format = 'newline_delimited'" + (f", columns = {{{as_text}}})" if as_text else ")")
    delim = ", delim = '\t'" if src.format == "tsv" else ""
    # Every column as text: a sniffed type can be wrong further down a large file; times and ratings are cast here.
    return f"read_csv({path}, header = true, all_varchar = true{delim})"


NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
           "FLOAT", "DOUBLE", "DECIMAL")


def _time_expr(col: str, kind: str) -> str:
    """Seconds since 1970 as DOUBLE: numbers as they are, timestamps and dates, or text holding either; NULL where
    the text is neither."""
    c = _quote(col)
    if kind.startswith(NUMERIC):
        return f"CAST({c} AS DOUBLE)"
    if kind.startswith(("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")):
        return f"epoch_us({c}) / 1e6"
    if kind.startswith(("TIMESTAMP", "DATE")):
        # a time without a zone is UTC (the session's zone), as in text; the cast to TIMESTAMPTZ, which says the
        # same, was most of the time a Parquet read took (docs/IMPORT.md, *Numeric ids*)
        return f"epoch_us(CAST({c} AS TIMESTAMP)) / 1e6"
    v = f"CAST({c} AS VARCHAR)"
    # 'YYYY-MM-DD HH:MM:SS' and 'YYYY-MM-DD' (the usual forms) take the plain cast, a third faster than the
    # time-zone-aware one that the rest need (an offset such as +02:00, which the plain cast would ignore).
    plain = (f"(length({v}) = 19 AND substr({v}, 17, 1) = ':' AND substr({v}, 5, 1) = '-') "
             f"OR (length({v}) = 10 AND substr({v}, 5, 1) = '-')")
    return (f"CASE WHEN {plain} THEN epoch_us(TRY_CAST({v} AS TIMESTAMP)) / 1e6 "
            f"ELSE coalesce(TRY_CAST({v} AS DOUBLE), epoch_us(TRY_CAST({v} AS TIMESTAMPTZ)) / 1e6) END")


# Id columns of these types (Parquet's integers; CSV and JSON lines are read as text) stay numbers where every file
# has them so: DuckDB reads, numbers and hashes 100 M of them in a fraction of the time their text takes
# (docs/IMPORT.md, *Numeric ids*). Their text (Importer.text) orders them and is written, as a text id would be.
INTEGER_IDS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
INT32_IDS = ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT")
INT32 = (-(2**31), 2**31 - 1)


def _id_expr(col: str, kind: str = "VARCHAR") -> str:
    if kind != "VARCHAR":
        return f"CAST({_quote(col)} AS {kind})"
    v = f"CAST({_quote(col)} AS VARCHAR)"
    return f"CASE WHEN trim({v}) = '' THEN NULL ELSE {v} END"


def _duckdb_message(exc: Exception) -> str:
    """DuckDB's error on one line, without its list of possible fixes (options of its own, not of this command)."""
    text = str(exc).split("\nPossible fixes")[0].split("\n\n")[0]
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


class Importer:
    """One import: the DuckDB connection, the sources and what each step removed."""

    def __init__(self, spec: ImportSpec, engine: Engine, workdir: Path, tick: Callable[[str], None]) -> None:
        import duckdb

        self.spec, self.engine, self.workdir, self.tick = spec, engine, workdir, tick
        self.con = duckdb.connect()
        spill = workdir / "spill"
        spill.mkdir()
        self.con.execute(f"SET memory_limit = {_literal(engine.memory_limit)}")
        self.con.execute(f"SET temp_directory = {_literal(str(spill))}")
        if engine.threads:
            self.con.execute(f"SET threads = {int(engine.threads)}")
        self.con.execute("SET preserve_insertion_order = true")  # row ids follow the files' row order
        self.con.execute("SET TimeZone = 'UTC'")  # times without an offset are read as UTC
        self.con.execute("SET enable_progress_bar = false")
        self.summary = Summary()
        self.sources: list[Source] = []
        self.pos = "ev.rowid"  # a row's position in the log: the row id of the table read, until dedupe copies it
        self.kept = 0  # rows that pass the filters and have both ids
        self.rows: arrays.Rows | None = None  # the in-memory path's rows, once numbered
        self.n_users = self.n_items = 0  # distinct ids numbered (in-memory path)
        self.numeric = {"u": False, "i": False}  # id columns kept as numbers (INTEGER_IDS), set by read

    def text(self, col: str) -> str:
        """The id column `col` ("u" or "i") as text: what orders the ids and what is written for them."""
        return f"CAST({col} AS VARCHAR)" if self.numeric[col] else col

    def sql(self, query: str) -> Any:
        import duckdb

        try:
            return self.con.execute(query)
        except duckdb.Error as exc:
            raise DataError(_duckdb_message(exc)) from None

    def numpy(self, query: str) -> dict[str, np.ndarray]:
        """A query's result as numpy arrays, through a relation (`sql`): DuckDB runs it to a materialized result on
        its threads, for half the CPU of converting `execute`'s streamed result (docs/IMPORT.md, *At scale*). On a
        cursor of its own (a relation may not start while this connection holds an unfinished result), closed after,
        so that closing the connection frees the database."""
        import duckdb

        try:
            with self.con.cursor() as cur:
                return dict(cur.sql(query).fetchnumpy())
        except duckdb.Error as exc:
            raise DataError(_duckdb_message(exc)) from None

    def count(self, query: str) -> int:
        return int(self.sql(query).fetchone()[0])

    # -- 1. read ------------------------------------------------------------------------------------
    def read(self, sources: list[Source]) -> None:
        import duckdb

        spec = self.spec
        described: list[tuple[Source, str, dict[str, str]]] = []
        for src in sources:
            reader = _reader(src)
            try:
                rows = self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
            except duckdb.Error as exc:
                raise DataError(f"{src.path}: cannot be read as {src.format}: {_duckdb_message(exc)}") from None
            types = {str(row[0]): str(row[1]) for row in rows}
            missing = [f"--{opt} {col!r}" for opt, col in spec.columns().items() if col not in types]
            if missing and src.format in ("csv", "tsv") and len(types) == 1 and any(c in next(iter(types))
                                                                                  for c in ",;\t|"):
                raise DataError(f"{src.path}: its rows could not be split into columns (the header reads as one "
                                f"column, {next(iter(types))!r}): look for a row with another number of fields or "
                                "an unclosed quote near the top")
            if missing:
                raise DataError(f"{src.path}: no column {', '.join(missing)}; its columns are "
                                + ", ".join(repr(c) for c in types))
            if src.format == "jsonl":
                src.columns = list(types)
                reader = _reader(src, src.columns)
                types = dict.fromkeys(types, "VARCHAR")
            described.append((src, reader, types))
        kinds = {}
        for col, name in (("u", spec.user), ("i", spec.item)):
            self.numeric[col] = all(types[name] in INTEGER_IDS for _, _, types in described)
            # 32 bits where every value fits: the table then stays within the memory limit (docs/IMPORT.md)
            kinds[col] = ("VARCHAR" if not self.numeric[col] else
                          "INTEGER" if all(self._int32(src, name, types[name]) for src, _, types in described)
                          else "BIGINT")
        self.sql(f"CREATE TABLE raw (u {kinds['u']}, i {kinds['i']}, t DOUBLE, keep BOOLEAN)")
        for src, reader, types in described:
            t = _time_expr(spec.time, types[spec.time]) if spec.time else "NULL"
            keep = ["TRUE"]
            if spec.rating is not None:
                r = f"TRY_CAST(CAST({_quote(spec.rating)} AS VARCHAR) AS DOUBLE)"
                # NULL (an error, reported by check) where a rating is there but is no number
                keep.append(f"CASE WHEN {_quote(spec.rating)} IS NOT NULL AND {r} IS NULL THEN NULL "
                            f"ELSE coalesce({r} >= {float(spec.min_rating or 0)!r}, FALSE) END")
            if spec.event is not None:
                listed = ", ".join(_literal(e) for e in spec.events)
                keep.append(f"coalesce(CAST({_quote(spec.event)} AS VARCHAR) IN ({listed}), FALSE)")
            src.first_row = self.summary.rows_read
            try:
                src.rows = int(self.con.execute(
                    f"INSERT INTO raw SELECT {_id_expr(spec.user, kinds['u'])}, {_id_expr(spec.item, kinds['i'])}, {t}, "
                    f"{' AND '.join(keep)} FROM {reader}").fetchone()[0])  # type: ignore[index]
            except duckdb.Error as exc:
                raise DataError(f"{src.path}: {_duckdb_message(exc)}") from None
            self.summary.rows_read += src.rows
            self.sources.append(src)
            self.tick(f"read {src.path.name}")

    def _int32(self, src: Source, col: str, kind: str) -> bool:
        """Whether every value of an integer column fits in 32 bits: by its type, else by the Parquet file's
        statistics (every row group's minimum and maximum; a file without them says no)."""
        if kind in INT32_IDS:
            return True
        if src.format != "parquet":
            return False
        n, known, low, high = self.con.execute(
            "SELECT count(*), count(TRY_CAST(stats_min_value AS HUGEINT)) + count(TRY_CAST(stats_max_value AS HUGEINT)), "
            "min(TRY_CAST(stats_min_value AS HUGEINT)), max(TRY_CAST(stats_max_value AS HUGEINT)) "
            f"FROM parquet_metadata({_literal(str(src.path))}) WHERE path_in_schema = {_literal(col)}").fetchone() or (0, 0, None, None)
        return bool(n) and known == 2 * n and INT32[0] <= low and high <= INT32[1]

    def where(self, pos: int) -> tuple[Source, int]:
        """The file and 1-based row of a position in the log."""
        src = next(s for s in reversed(self.sources) if s.first_row <= pos)
        return src, pos - src.first_row + 1

    def _row_words(self, src: Source, row: int) -> str:
        text_line = {"csv": row + 1, "tsv": row + 1, "jsonl": row}.get(src.format)  # CSV/TSV: line 1 is the header
        return f"row {row}" + (f" (line {text_line})" if text_line is not None else "")

    def _value(self, src: Source, row: int, col: str) -> Any:
        got = self.sql(f"SELECT {_quote(col)} FROM {_reader(src, src.columns)} LIMIT 1 OFFSET {row - 1}").fetchone()
        return got[0] if got else None

    # -- 2. check and count --------------------------------------------------------------------------
    def check(self) -> None:
        spec = self.spec
        if self.summary.rows_read == 0:
            raise DataError("the log holds no rows: " + ", ".join(str(s.path) for s in self.sources))
        bad_time = "t IS NULL" if spec.time else "FALSE"
        row = self.sql(
            f"SELECT count(*) FILTER (WHERE keep = FALSE), "
            f"count(*) FILTER (WHERE keep AND (u IS NULL OR i IS NULL)), "
            f"min(rowid) FILTER (WHERE keep IS NULL), "
            f"min(rowid) FILTER (WHERE keep AND u IS NOT NULL AND i IS NOT NULL AND {bad_time}) FROM raw").fetchone()
        filtered, null_ids, bad_rating, bad_t = row
        if bad_rating is not None:
            src, r = self.where(int(bad_rating))
            value = self._value(src, r, spec.rating or "")
            raise DataError(f"{src.path}, {self._row_words(src, r)}, column {spec.rating!r}: rating {value!r} "
                            "is not a number")
        if bad_t is not None:
            src, r = self.where(int(bad_t))
            value = self._value(src, r, spec.time or "")
            what = "no time" if value is None else f"time {value!r} is neither a number nor a date/time"
            raise DataError(f"{src.path}, {self._row_words(src, r)}, column {spec.time!r}: {what}")
        if spec.rating is not None or spec.event is not None:
            self.summary.dropped["filter (" + ", ".join(self._filters()) + ")"] = int(filtered)
        self.summary.dropped["null ids"] = int(null_ids)
        left = self.kept = self.summary.rows_read - int(filtered) - int(null_ids)
        if left == 0:
            why = (f"the filter {', '.join(self._filters())} kept no row" if filtered else
                   f"every row lacks a user ({spec.user!r}) or item ({spec.item!r}) id")
            raise DataError(f"nothing to import: {why}")
        self.tick("check")

    def _filters(self) -> list[str]:
        s = self.spec
        out = [f"{s.rating} >= {s.min_rating:g}"] if s.rating is not None and s.min_rating is not None else []
        return out + ([f"{s.event} in {','.join(s.events)}"] if s.event is not None else [])

    # -- 3. the rows kept --------------------------------------------------------------------------
    def keep_rows(self) -> None:
        # Ids stay strings (DuckDB keeps those up to 12 bytes inline): numbering them first (DISTINCT and two joins)
        # cost more than the later steps saved (docs/IMPORT.md, *At scale*).
        if self.count("SELECT count(*) FROM raw WHERE keep IS NOT TRUE OR u IS NULL OR i IS NULL"):
            self.sql("DELETE FROM raw WHERE keep IS NOT TRUE OR u IS NULL OR i IS NULL")
        self.sql("ALTER TABLE raw RENAME TO ev")
        self.tick("kept")

    # -- 3b. the in-memory path: ids to integer codes ------------------------------------------------
    def number(self) -> None:
        """Where the arrays fit in the memory limit (or Engine.in_memory says so): number the distinct ids in their
        external order, fetch the rows as codes (and times) in log order, close DuckDB and sort the rows by user,
        time and position. Otherwise, or where an id's hash collides with another's or an id holds a line break
        (the DuckDB path reports those as before), the rows stay in DuckDB."""
        limit = parse_size(self.engine.memory_limit)
        need = arrays.bytes_needed(self.kept)
        fits = limit is not None and need <= limit
        if self.engine.in_memory is False or (self.engine.in_memory is None and not fits):
            self.summary.path = (
                "DuckDB, out of core (as asked)" if fits else
                f"DuckDB, out of core (the memory limit {self.engine.memory_limit} is no size in bytes)" if limit is None
                else f"DuckDB, out of core ({self.kept:,} rows: {need:,} bytes of arrays in memory would exceed "
                     f"the memory limit {self.engine.memory_limit})")
            return
        self.sql(f"CREATE TABLE uid AS SELECT u, hash(u) AS h FROM (SELECT DISTINCT u FROM ev) ORDER BY {self.text('u')}")
        # the items' rows too (as cheap as DISTINCT): the popular items get the first probe of the hash index
        self.sql("CREATE TABLE iid AS SELECT i, hash(i) AS h, n FROM (SELECT i, count(*) AS n FROM ev GROUP BY i) "
                 f"ORDER BY {self.text('i')}")
        item_rows = self.numpy("SELECT n FROM iid ORDER BY rowid")["n"]
        # per id column: its distinct ids' keys in code order, and whether they are the ids themselves (looked up in
        # a DirectIndex) or their hashes (a HashIndex)
        keys: dict[str, np.ndarray] = {}
        direct: dict[str, bool] = {}
        for column, table in (("u", "uid"), ("i", "iid")):
            ids = self.numpy(f"SELECT {column} FROM {table} ORDER BY rowid")[column] if self.numeric[column] else None
            direct[column] = ids is not None and arrays.DirectIndex.fits(ids)
            keys[column] = (ids if ids is not None and direct[column] else
                            self.numpy(f"SELECT h FROM {table} ORDER BY rowid")["h"])
        breaks = sum(self.count(f"SELECT count(*) FROM {table} WHERE contains({col}, chr(10)) OR contains({col}, chr(13))")
                     for table, col in (("uid", "u"), ("iid", "i")) if not self.numeric[col])
        why = ("an id holds a line break" if breaks else
               "two ids share a hash" if not all(arrays.unique_keys(keys[c]) for c in keys if not direct[c]) else None)
        if why:
            self.sql("DROP TABLE uid")
            self.sql("DROP TABLE iid")
            self.summary.path = f"DuckDB ({why})"
            return
        self.tick("number")
        self.n_users = self._id_lines("uid", self.text("u"), self.workdir / "users.all")
        self.n_items = self._id_lines("iid", self.text("i"), self.workdir / "items.all")
        self.sql("DROP TABLE uid")
        self.sql("DROP TABLE iid")
        self.tick("id lines")

        def index_bytes(col: str) -> int:
            return arrays.DirectIndex.bytes_for(keys[col]) if direct[col] else arrays.HashIndex.bytes_for(len(keys[col]))

        # DuckDB gives back what the arrays will hold (it spills the rest of the log to disk meanwhile)
        held = self.kept * arrays.FETCHED_BYTES_PER_ROW + index_bytes("u") + index_bytes("i") + arrays.FETCH_OVERHEAD
        duck = max((limit or need) - held, 256 * 10**6)
        self.sql(f"SET memory_limit = '{duck // 10**6}MB'")

        def index(col: str, weights: np.ndarray | None = None) -> arrays.HashIndex | arrays.DirectIndex:
            return arrays.DirectIndex(keys[col]) if direct[col] else arrays.HashIndex(keys[col], weights)

        users_at, items_at = index("u"), index("i", item_rows)
        timed = self.spec.time is not None
        users = np.empty(self.kept, dtype=np.int32)
        items = np.empty(self.kept, dtype=np.int32)
        times = np.empty(self.kept, dtype=np.float64) if timed else None
        at = 0
        key = {col: col if direct[col] else f"hash({col})" for col in ("u", "i")}  # what a row is looked up by
        query = (f"SELECT rowid AS pos, {key['u']} AS hu, {key['i']} AS hi{', t' if timed else ''} FROM ev "
                 "WHERE rowid >= {lo} AND rowid < {hi}")

        def fetch(lo: int) -> dict[str, Any]:
            return self.numpy(query.format(lo=lo, hi=lo + arrays.FETCH_ROWS))

        # DuckDB fetches the next chunk (on its threads, the GIL released) while numpy looks this one up
        with ThreadPoolExecutor(1) as pool:
            starts = range(0, self.summary.rows_read, arrays.FETCH_ROWS)
            pending = pool.submit(fetch, starts[0]) if starts else None
            for k in range(len(starts)):
                assert pending is not None
                got = pending.result()
                pending = pool.submit(fetch, starts[k + 1]) if k + 1 < len(starts) else None
                pos = np.asarray(got["pos"])
                order = None if bool(np.all(pos[1:] > pos[:-1])) else np.argsort(pos)  # a scan gives them in order

                def col(name: str, got: dict[str, Any] = got, order: np.ndarray | None = order) -> np.ndarray:
                    a = np.asarray(got[name])
                    return a if order is None else a[order]

                n = len(pos)
                users[at : at + n] = users_at.lookup(col("hu"))
                items[at : at + n] = items_at.lookup(col("hi"))
                if times is not None:
                    times[at : at + n] = col("t")
                at += n
        if at != self.kept:
            raise RuntimeError(f"fetched {at} rows of {self.kept}")
        self.con.close()  # frees DuckDB's memory for the arrays
        _trim_heap()
        self.summary.path = (f"in memory ({self.kept:,} rows: {need:,} bytes of arrays within the memory limit "
                             f"{self.engine.memory_limit})" if self.engine.in_memory is None else
                             "in memory (as asked)")
        self.tick("fetch")
        del users_at, items_at
        self.rows = arrays.Rows(users, items, times)
        del users, items, times  # the sort frees what it is done with: no reference may stay here
        self.rows.sort(self.engine.threads)
        self.tick("order")

    # -- 4. filters ---------------------------------------------------------------------------------
    def dedupe(self) -> None:
        if not self.spec.dedupe_consecutive:
            return
        if self.rows is not None:
            repeats = arrays.consecutive_repeats(self.rows.users, self.rows.items)
            self.summary.dropped["dedupe consecutive"] = int(repeats.sum())
            self.rows.keep(~repeats)
            self.tick("dedupe")
            return
        before = self.count("SELECT count(*) FROM ev")
        self.sql(f"CREATE TABLE ev2 AS SELECT u, i, t, pos FROM (SELECT u, i, t, {self.pos} AS pos, lag(i) OVER "
                 f"(PARTITION BY u ORDER BY t, {self.pos}) AS prev FROM ev) WHERE prev IS DISTINCT FROM i")
        self.sql("DROP TABLE ev")
        self.sql("ALTER TABLE ev2 RENAME TO ev")
        self.pos = "ev.pos"
        self.summary.dropped["dedupe consecutive"] = before - self.count("SELECT count(*) FROM ev")
        self.tick("dedupe")

    def _delete(self, key: str, below: int) -> int:
        return self.count(f"DELETE FROM ev WHERE {key} IN (SELECT {key} FROM ev GROUP BY {key} "
                          f"HAVING count(*) < {below})")

    def cores(self) -> None:
        """k-core and minimum length to a fixpoint. A pass drops items below k, then users below k (or the minimum
        length); it stops as soon as a step removes nothing that the other depends on: users removing nothing
        leave every item's count as the item step left it (>= k), items removing nothing (after the first pass)
        leave every user as the last user step left them."""
        spec = self.spec
        if self.rows is not None:
            self._cores_in_memory(self.rows)
            return
        kcore_removed = length_removed = 0
        while spec.kcore:
            self.summary.kcore_passes += 1
            n = self._delete("i", spec.kcore)
            kcore_removed += n
            if not n and self.summary.kcore_passes > 1:
                break
            n = self._delete("u", spec.kcore)
            kcore_removed += n
            m = self._delete("u", spec.min_length) if spec.min_length > spec.kcore else 0
            length_removed += m
            if not n + m:
                break
        if spec.min_length and not spec.kcore:  # reached in one step: dropping a user changes no other user
            length_removed += self._delete("u", spec.min_length)
        if spec.kcore:
            self.summary.dropped[f"k-core {spec.kcore}"] = kcore_removed
        if spec.min_length:
            self.summary.dropped[f"min length {spec.min_length}"] = length_removed
        if self.count("SELECT count(*) FROM ev") == 0:
            emptied = (f"the {spec.kcore}-core" if kcore_removed else f"the minimum length {spec.min_length}")
            raise DataError(f"nothing to import: {emptied} removed every remaining interaction")
        self.tick("k-core" if spec.kcore else "filters")

    def _cores_in_memory(self, rows: arrays.Rows) -> None:
        spec = self.spec
        cores = arrays.Cores(spec.kcore, spec.min_length)
        alive = cores.run(rows.users, rows.items, self.n_users, self.n_items)
        if not alive.all():
            rows.keep(alive)
        self.summary.kcore_passes = cores.passes
        if spec.kcore:
            self.summary.dropped[f"k-core {spec.kcore}"] = cores.kcore_removed
        if spec.min_length:
            self.summary.dropped[f"min length {spec.min_length}"] = cores.length_removed
        if not len(rows.users):
            emptied = f"the {spec.kcore}-core" if cores.kcore_removed else f"the minimum length {spec.min_length}"
            raise DataError(f"nothing to import: {emptied} removed every remaining interaction")
        self.tick("k-core" if spec.kcore else "filters")

    # -- 5. order and write -------------------------------------------------------------------------
    def write(self, out: Path) -> None:
        if self.rows is not None:
            self._write_in_memory(self.rows, out)
            return
        # Items by popularity (ties by external id): hot embedding rows sit together, item_ids.txt starts with
        # the best sellers, and the numbering does not depend on how the log was split into files.
        self.sql(f"CREATE TABLE iorder AS SELECT i, (row_number() OVER (ORDER BY n DESC, {self.text('i')}))::INTEGER "
                 "AS item FROM (SELECT i, count(*) AS n FROM ev GROUP BY i)")
        self.sql(f"CREATE TABLE uorder AS SELECT u, n, (row_number() OVER (ORDER BY {self.text('u')}) - 1)::INTEGER "
                 "AS row FROM (SELECT u, count(*) AS n FROM ev GROUP BY u)")
        self.sql(f"CREATE TABLE fin AS SELECT item FROM ev JOIN uorder USING (u) JOIN iorder USING (i) "
                 f"ORDER BY row, t NULLS FIRST, {self.pos}")
        self.sql("DROP TABLE ev")
        self.tick("order")
        counts = self.sql("SELECT n FROM uorder ORDER BY row").fetchnumpy()["n"].astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        np.save(out / dataset.OFFSETS, offsets)
        total = int(offsets[-1])
        # Appended a chunk at a time to a plain file (not a memory map, whose written pages would count in the
        # process's RSS up to the whole array).
        with open(out / dataset.ITEMS, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<i4", "fortran_order": False, "shape": (total,)})
            for lo in range(0, total, FETCH_ROWS):
                hi = min(lo + FETCH_ROWS, total)
                chunk = self.sql(f"SELECT item FROM fin WHERE rowid >= {lo} AND rowid < {hi}").fetchnumpy()["item"]
                fh.write(np.ascontiguousarray(chunk, dtype="<i4").tobytes())
        n_users = dataset.write_lines(out / dataset.USERS, self._strings(f"SELECT {self.text('u')} FROM uorder ORDER BY row"),
                                      "user id")
        n_items = dataset.write_lines(out / dataset.ITEM_IDS,
                                      self._strings(f"SELECT {self.text('i')} FROM iorder ORDER BY item"), "item id")
        q = self.sql("SELECT quantile_disc(n, 0.5), quantile_disc(n, 0.9), quantile_disc(n, 0.99), max(n) "
                     "FROM uorder").fetchone() or ()
        self.summary.length = dict(zip(("p50", "p90", "p99", "max"), (int(v) for v in q), strict=True))
        self.summary.users, self.summary.items, self.summary.interactions = n_users, n_items, total
        self.tick("write")

    def _write_in_memory(self, rows: arrays.Rows, out: Path) -> None:
        counts = np.bincount(rows.users, minlength=self.n_users)
        users = np.flatnonzero(counts)  # codes of the users kept, in their external order
        lengths = counts[users].astype(np.int64)
        np.save(out / dataset.OFFSETS, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        ranked, new_id = arrays.popularity_order(rows.items, self.n_items)
        arrays.write_items(out / dataset.ITEMS, new_id[rows.items])
        arrays.write_selected_lines(self.workdir / "users.all", users, out / dataset.USERS)
        arrays.write_selected_lines(self.workdir / "items.all", ranked, out / dataset.ITEM_IDS)
        self.summary.length = arrays.length_quantiles(lengths)
        self.summary.users, self.summary.items, self.summary.interactions = len(users), len(ranked), len(rows.items)
        self.tick("write")

    def _id_lines(self, table: str, text: str, path: Path) -> int:
        """A table's ids as text (the expression `text`), in row order, one a line (none holds a line break:
        number() checked)."""
        n = self.count(f"SELECT count(*) FROM {table}")
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for lo in range(0, n, arrays.FETCH_ROWS):
                ids = self.numpy(f"SELECT {text} AS id FROM {table} WHERE rowid >= {lo} "
                                 f"AND rowid < {lo + arrays.FETCH_ROWS}")["id"]
                fh.write("\n".join(ids.tolist()) + "\n")
        return n

    def _strings(self, query: str) -> Iterator[str]:
        result = self.sql(query)
        while rows := result.fetchmany(LINE_ROWS):
            for (s,) in rows:
                yield s


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc keeps those of freed small blocks, here the fetches'
    temporaries), so that the sort's arrays do not come on top of them."""
    import contextlib
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def import_logs(
    logs: list[Path], out: Path, spec: ImportSpec, engine: Engine = Engine(), progress: bool = False,
    overwrite: bool = False, catalog: Catalog | None = None,
) -> dict[str, Any]:
    """Import the logs into the data set directory `out`, written beside it under a temporary name and renamed at
    the end: on any failure nothing is left at `out` (nor the temporary directory). With `catalog` the data set
    keeps it (dataset.CATALOG), and `elcrec train` stores it with the model. Returns dataset.json."""
    from tqdm import tqdm

    spec.check()
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists (pass --overwrite to replace it)")
    sources = resolve_sources(logs)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
    # read each file, check, kept, (number,) (dedupe,) filters, order, write
    steps = len(sources) + 6 + int(spec.dedupe_consecutive)
    bar = tqdm(total=steps, desc="import", unit="step", disable=not progress, leave=False)

    started = last = time.perf_counter()
    stages: dict[str, float] = {}

    def tick(what: str) -> None:
        nonlocal last
        now = time.perf_counter()
        stage = "read" if what.startswith("read ") else what
        stages[stage] = round(stages.get(stage, 0.0) + now - last, 2)
        last = now
        bar.set_postfix_str(what)
        bar.update()

    try:
        imp = Importer(spec, engine, work, tick)
        imp.summary.stage_seconds = stages
        imp.read(sources)
        imp.check()
        imp.keep_rows()
        imp.number()
        imp.dedupe()
        imp.cores()
        target = work / "dataset"
        target.mkdir()
        imp.write(target)
        if catalog is not None:
            (target / dataset.CATALOG).write_text(catalog.to_jsonl(), encoding="utf-8")
        imp.con.close()
        shutil.rmtree(work / "spill", ignore_errors=True)
        imp.summary.seconds = round(time.perf_counter() - started, 1)
        meta = dataset.write_meta(target, {
            "users": imp.summary.users, "items": imp.summary.items, "interactions": imp.summary.interactions,
            "item_order": "by popularity (interactions after the filters, most first; ties by external id)",
            "user_order": "by external id",
            "sources": [{"path": str(s.path.resolve()), "format": s.format, "rows": s.rows} for s in imp.sources],
            "columns": spec.columns(),
            "filters": {k: v for k, v in asdict(spec).items() if k not in ("user", "item", "time", "rating", "event")},
            "summary": asdict(imp.summary),
            **({"catalog": {**catalog.describe(), "sha256": dataset.sha256_file(target / dataset.CATALOG)}}
               if catalog is not None else {}),
        })
        if out.exists():  # --overwrite: the old data set goes only once the new one is complete
            old = work / "replaced"
            os.replace(out, old)
        os.replace(target, out)
    except BaseException:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    bar.close()
    shutil.rmtree(work, ignore_errors=True)
    return meta


def summary_lines(meta: dict[str, Any]) -> list[str]:
    s = meta["summary"]
    return Summary(**{k: s[k] for k in Summary.__dataclass_fields__}).lines()


def dumps(meta: dict[str, Any]) -> str:
    return json.dumps(meta["summary"], indent=2)
