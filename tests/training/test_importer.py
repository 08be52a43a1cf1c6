import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from elcrec.training.data import DataError, read_interactions
from elcrec.training.importer import ImportSpec, import_logs

HEADER = ["user", "item", "ts", "rating", "event"]


def write_csv(path: Path, rows: list[tuple], sep: str = ",", header: list[str] = HEADER) -> Path:
    path.write_text("\n".join(sep.join(str(v) for v in r) for r in [tuple(header), *rows]) + "\n")
    return path


def write_parquet(path: Path, rows: list[tuple]) -> Path:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (user VARCHAR, item VARCHAR, ts TIMESTAMP, rating INTEGER, event VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    return path


def write_jsonl(path: Path, rows: list[tuple]) -> Path:
    path.write_text("".join(json.dumps(dict(zip(HEADER, r, strict=True))) + "\n" for r in rows))
    return path


def sequences(out: Path) -> dict[str, list[str]]:
    """user -> external item ids in sequence order, read back through read_interactions."""
    data = read_interactions(out)
    assert data.item_ids is not None
    return {data.users[u]: [data.item_ids[i - 1] for i in data.sequence(u).tolist()] for u in range(data.n_users)}


SPEC = ImportSpec(user="user", item="item", time="ts")
ROWS = [  # user, item, time, rating, event
    ("u1", "b", "2021-01-03 10:00:00", 5, "buy"),
    ("u2", "a", "2021-01-01 09:00:00", 2, "view"),
    ("u1", "a", "2021-01-01 09:00:00", 4, "view"),
    ("u1", "c", "2021-01-03 10:00:00", 1, "view"),  # same time as b, later in the file
    ("u2", "c", "2021-01-02 09:00:00", 5, "buy"),
]
EXPECTED = {"u1": ["a", "b", "c"], "u2": ["a", "c"]}


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl"])
def test_each_format_gives_time_ordered_sequences_with_ties_in_file_order(tmp_path, fmt):
    log = {
        "csv": lambda: write_csv(tmp_path / "log.csv", ROWS),
        "tsv": lambda: write_csv(tmp_path / "log.tsv", ROWS, sep="\t"),
        "parquet": lambda: write_parquet(tmp_path / "log.parquet", ROWS),
        "jsonl": lambda: write_jsonl(tmp_path / "log.jsonl", ROWS),
    }[fmt]()
    meta = import_logs([log], tmp_path / "ds", SPEC)
    assert sequences(tmp_path / "ds") == EXPECTED
    assert meta["summary"]["interactions"] == 5 and meta["users"] == 2 and meta["items"] == 3
    # internal ids by popularity, ties by external id: a (2), c (2), b (1)
    assert (tmp_path / "ds" / "item_ids.txt").read_text() == "a\nc\nb\n"
    assert meta["columns"] == {"user": "user", "item": "item", "time": "ts"}


def test_ties_follow_file_name_order_across_parts_and_other_column_names(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    header = ["uid", "product", "when"]
    # same time everywhere: the order is the parts' names, then rows within a part
    write_csv(parts / "part-2.csv", [("u1", "z", 7), ("u1", "y", 7)], header=header)
    write_csv(parts / "part-10.csv", [("u1", "x", 7)], header=header)  # "part-10" sorts before "part-2"
    write_csv(parts / "part-1.csv", [("u1", "w", 7), ("u2", "w", 3)], header=header)
    spec = ImportSpec(user="uid", item="product", time="when")
    meta = import_logs([parts], tmp_path / "ds", spec)
    assert sequences(tmp_path / "ds") == {"u1": ["w", "x", "z", "y"], "u2": ["w"]}
    assert [Path(s["path"]).name for s in meta["sources"]] == ["part-1.csv", "part-10.csv", "part-2.csv"]
    glob_meta = import_logs([parts / "part-1*.csv"], tmp_path / "ds2", spec)
    assert [s["rows"] for s in glob_meta["sources"]] == [2, 1]


def test_times_as_numbers_dates_and_offsets(tmp_path):
    rows = [("u1", "late", "2021-01-01 09:00:00"), ("u1", "early", "2021-01-01T10:00:00+02:00"),
            ("u1", "first", "2020-12-31"), ("u2", "b", 20), ("u2", "a", 10.5)]
    log = write_csv(tmp_path / "log.csv", rows, header=["user", "item", "ts"])
    import_logs([log], tmp_path / "ds", SPEC)
    assert sequences(tmp_path / "ds") == {"u1": ["first", "early", "late"], "u2": ["a", "b"]}


def test_parquet_time_types_read_as_the_same_clock(tmp_path):
    """Times of each Parquet type, one file each, merge into one order: a zone is honoured, a time without one is
    UTC, a date is its midnight, nanoseconds are taken to the nearest microsecond (as DuckDB casts them)."""
    files = []
    for n, (kind, value, item) in enumerate([
        ("TIMESTAMPTZ", "2021-01-01 10:00:00+02:00", "early"),  # 08:00 UTC
        ("TIMESTAMP", "2021-01-01 09:00:00", "late"),
        ("DATE", "2021-01-01", "first"),
        ("TIMESTAMP_NS", "2021-01-01 08:30:00.000000900", "between"),  # 08:30:00.000001
        ("TIMESTAMP_S", "2021-01-01 09:00:01", "last"),
        ("TIMESTAMP_MS", "2021-01-01 08:30:00.001", "just after"),
    ]):
        con = duckdb.connect()
        path = tmp_path / f"{n}.parquet"
        con.execute(f"COPY (SELECT 'u1' AS user, '{item}' AS item, CAST('{value}' AS {kind}) AS ts) TO '{path}' "
                    "(FORMAT parquet)")
        files.append(path)
    import_logs(files, tmp_path / "ds", SPEC)
    assert sequences(tmp_path / "ds") == {"u1": ["first", "early", "between", "just after", "late", "last"]}


def test_without_a_time_column_the_file_order_is_kept(tmp_path):
    log = write_csv(tmp_path / "log.csv", ROWS)
    import_logs([log], tmp_path / "ds", ImportSpec(user="user", item="item"))
    assert sequences(tmp_path / "ds") == {"u1": ["b", "a", "c"], "u2": ["a", "c"]}


def test_rating_threshold_and_event_filter_and_their_counts(tmp_path):
    log = write_csv(tmp_path / "log.csv", ROWS)
    meta = import_logs([log], tmp_path / "ds", ImportSpec(user="user", item="item", time="ts", rating="rating",
                                                          min_rating=4))
    assert sequences(tmp_path / "ds") == {"u1": ["a", "b"], "u2": ["c"]}
    assert meta["summary"]["dropped"]["filter (rating >= 4)"] == 2
    meta = import_logs([log], tmp_path / "ds2", ImportSpec(user="user", item="item", time="ts", event="event",
                                                           events=("buy",)))
    assert sequences(tmp_path / "ds2") == {"u1": ["b"], "u2": ["c"]}
    assert meta["summary"]["dropped"]["filter (event in buy)"] == 3


def test_kcore_iterates_until_users_and_items_both_hold(tmp_path):
    # 2-core. One pass: item d has 1 interaction -> u3 drops to 1 item -> then item c has 1 -> u2 drops...
    rows = [("u1", "a", 1), ("u1", "b", 2), ("u2", "a", 3), ("u2", "b", 4),
            ("u3", "c", 5), ("u3", "d", 6), ("u4", "c", 7), ("u4", "e", 8)]
    log = write_csv(tmp_path / "log.csv", rows, header=["user", "item", "ts"])
    meta = import_logs([log], tmp_path / "ds", ImportSpec(user="user", item="item", time="ts", kcore=2))
    # pass 1: items d, e go (1 each) -> u3, u4 hold 1 item each and go; pass 2: c has 0 left
    assert sequences(tmp_path / "ds") == {"u1": ["a", "b"], "u2": ["a", "b"]}
    assert meta["summary"]["dropped"]["k-core 2"] == 4
    assert meta["summary"]["kcore_passes"] >= 2


def test_kcore_needing_a_second_pass(tmp_path):
    # 2-core: item x has 2 interactions at first, but u3 (1 item after z goes) leaves, and x falls to 1
    rows = [("u1", "a", 1), ("u1", "b", 2), ("u2", "a", 3), ("u2", "b", 4), ("u1", "x", 5),
            ("u3", "x", 6), ("u3", "z", 7)]
    log = write_csv(tmp_path / "log.csv", rows, header=["user", "item", "ts"])
    meta = import_logs([log], tmp_path / "ds", ImportSpec(user="user", item="item", time="ts", kcore=2))
    assert sequences(tmp_path / "ds") == {"u1": ["a", "b"], "u2": ["a", "b"]}
    assert meta["summary"]["dropped"]["k-core 2"] == 3 and meta["summary"]["kcore_passes"] == 2


def test_kcore_with_a_longer_minimum_length_holds_both(tmp_path):
    # 2-core alone keeps u1..u3; min length 3 drops u3 (2 items), and then item c (u1, u3) falls below 2
    rows = [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u2", "a", 1), ("u2", "b", 2), ("u2", "d", 3),
            ("u4", "a", 1), ("u4", "b", 2), ("u4", "d", 3), ("u3", "c", 1), ("u3", "d", 2)]
    log = write_csv(tmp_path / "log.csv", rows, header=["user", "item", "ts"])
    meta = import_logs([log], tmp_path / "ds", ImportSpec(user="user", item="item", time="ts", kcore=2,
                                                          min_length=3))
    # after c goes, u1 holds 2 items (< 3) and goes too; a, b, d keep 2 interactions each
    assert sequences(tmp_path / "ds") == {"u2": ["a", "b", "d"], "u4": ["a", "b", "d"]}
    assert meta["summary"]["dropped"] == {"null ids": 0, "k-core 2": 1, "min length 3": 4}


def test_min_length_and_consecutive_repeats(tmp_path):
    rows = [("u1", "a", 1), ("u1", "a", 2), ("u1", "b", 3), ("u1", "a", 4), ("u1", "a", 5), ("u2", "a", 1),
            ("u2", "a", 2)]
    log = write_csv(tmp_path / "log.csv", rows, header=["user", "item", "ts"])
    meta = import_logs([log], tmp_path / "ds", ImportSpec(user="user", item="item", time="ts", min_length=2,
                                                          dedupe_consecutive=True))
    assert sequences(tmp_path / "ds") == {"u1": ["a", "b", "a"]}  # u2 is one item once repeats go
    assert meta["summary"]["dropped"] == {"null ids": 0, "dedupe consecutive": 3, "min length 2": 1}


def test_summary_counts_and_lengths(tmp_path):
    rows = [*ROWS, ("", "a", "2021-01-05 00:00:00", 3, "view"), ("u3", "", "2021-01-05 00:00:00", 3, "view")]
    log = write_csv(tmp_path / "log.csv", rows)
    meta = import_logs([log], tmp_path / "ds", SPEC)
    s = meta["summary"]
    assert (s["rows_read"], s["dropped"]["null ids"], s["users"], s["items"], s["interactions"]) == (7, 2, 2, 3, 5)
    assert s["length"] == {"p50": 2, "p90": 3, "p99": 3, "max": 3}
    stored = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert stored["summary"] == s and set(stored["sha256"]) == {"offsets.npy", "items.npy", "users.txt",
                                                                 "item_ids.txt"}


def test_the_dataset_loads_memory_mapped_with_a_fingerprint_from_its_hashes(tmp_path):
    import_logs([write_csv(tmp_path / "log.csv", ROWS)], tmp_path / "ds", SPEC)
    data = read_interactions(tmp_path / "ds")
    assert isinstance(data.items, np.memmap) and data.items.dtype == np.int32
    assert data.offsets.tolist() == [0, 3, 5] and list(data.users) == ["u1", "u2"] and data.n_items == 3
    again = read_interactions(tmp_path / "ds")
    assert again.fingerprint == data.fingerprint
    (tmp_path / "ds" / "items.npy").write_bytes(b"broken")
    with pytest.raises(DataError, match="items.npy"):
        read_interactions(tmp_path / "ds")


@pytest.mark.parametrize(
    ("rows", "spec", "message"),
    [
        (ROWS, ImportSpec(user="customer", item="item"), r"log.csv: no column --user 'customer'; its columns are "
                                                         r"'user', 'item', 'ts', 'rating', 'event'"),
        ([*ROWS[:2], ("u3", "a", "yesterday", 1, "view")], SPEC,
         r"log.csv, row 3 \(line 4\), column 'ts': time 'yesterday' is neither a number nor a date/time"),
        ([*ROWS[:3], ("u3", "a", "2021-01-01", "good", "view")],
         ImportSpec(user="user", item="item", rating="rating", min_rating=3),
         r"log.csv, row 4 \(line 5\), column 'rating': rating 'good' is not a number"),
        (ROWS, ImportSpec(user="user", item="item", rating="rating", min_rating=9),
         r"nothing to import: the filter rating >= 9 kept no row"),
        (ROWS, ImportSpec(user="user", item="item", kcore=3), r"nothing to import: the 3-core removed every"),
    ],
)
@pytest.mark.parametrize("in_memory", [True, False])
def test_bad_input_names_file_row_and_column_and_writes_nothing(tmp_path, rows, spec, message, in_memory):
    from elcrec.training.importer import Engine

    log = write_csv(tmp_path / "log.csv", rows)
    with pytest.raises(DataError, match=message):
        import_logs([log], tmp_path / "ds", spec, Engine(in_memory=in_memory))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]  # no DIR, no temporary directory


def test_a_bad_value_in_a_later_part_names_that_part_and_its_row(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    write_jsonl(parts / "a.jsonl", ROWS)
    write_jsonl(parts / "b.jsonl", [ROWS[0], ROWS[1], ("u9", "z", "soon", 1, "view")])
    with pytest.raises(DataError, match=r"b.jsonl, row 3 \(line 3\), column 'ts': time 'soon'"):
        import_logs([parts], tmp_path / "ds", SPEC)
    assert not (tmp_path / "ds").exists()


def test_a_malformed_row_deep_in_a_csv_names_its_line(tmp_path):
    rows = [(f"u{k}", f"i{k % 7}", k) for k in range(30_000)]
    log = write_csv(tmp_path / "log.csv", rows, header=["user", "item", "ts"])
    with open(log, "a") as fh:
        fh.write("u1,i2,5,extra\n")
    with pytest.raises(DataError, match=r"log.csv: .*Line: 30002; Original Line: u1,i2,5,extra") as caught:
        import_logs([log], tmp_path / "ds", SPEC)
    assert "\n" not in str(caught.value)


def test_a_failure_midway_leaves_nothing_and_keeps_an_existing_dataset(tmp_path, monkeypatch):
    from elcrec.training import importer

    log = write_csv(tmp_path / "log.csv", ROWS)
    import_logs([log], tmp_path / "ds", SPEC)
    before = (tmp_path / "ds" / "dataset.json").read_text()

    def boom(self, out):
        (out / "items.npy").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(importer.Importer, "write", boom)
    with pytest.raises(OSError, match="disk full"):
        import_logs([log], tmp_path / "ds", SPEC, overwrite=True)
    assert (tmp_path / "ds" / "dataset.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "log.csv"]
    with pytest.raises(DataError, match="already exists"):
        import_logs([log], tmp_path / "ds", SPEC)


def test_the_exported_items_are_the_external_ids(tmp_path):
    from elcrec.training.export import item_ids_for

    import_logs([write_csv(tmp_path / "log.csv", ROWS)], tmp_path / "ds", SPEC)
    data = read_interactions(tmp_path / "ds")
    assert item_ids_for(data, data.n_items) == [None, "a", "c", "b", None]
    with pytest.raises(ValueError, match="names 3 items, the model has 4"):
        item_ids_for(data, 4)


def test_string_tables_read_ids_back_as_written(tmp_path):
    from elcrec.training.dataset import StringTable, write_lines

    ids = [f"user-{k}-ü" for k in range(70_000)] + ["", "x y"]
    write_lines(tmp_path / "ids.txt", ids, "user id")
    table = StringTable.from_lines_file(tmp_path / "ids.txt")
    assert len(table) == len(ids) and list(table) == ids and table[-1] == "x y" and table[5:7] == ids[5:7]
    with pytest.raises(Exception, match="line break"):
        write_lines(tmp_path / "bad.txt", ["a\nb"], "user id")


def random_log(n: int, seed: int) -> list[tuple]:
    """Users and items of uneven popularity, few distinct times (many ties), some rows without an id, repeats."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        user = "" if k % 97 == 5 else f"u{int(rng.zipf(1.3)) % 60}"
        item = "" if k % 89 == 7 else f"i{int(rng.zipf(1.5)) % 40}"
        rows.append((user, item, f"2021-01-0{1 + int(rng.integers(0, 3))} 10:00:00", int(rng.integers(1, 6)),
                     ("buy", "view")[int(rng.integers(0, 2))]))
        if k % 11 == 0:
            rows.append(rows[-1])  # the same item again: a consecutive repeat
    return rows


def written(out: Path) -> dict[str, object]:
    """What an import leaves, less the timings and which path it took."""
    meta = json.loads((out / "dataset.json").read_text())
    summary = {k: v for k, v in meta["summary"].items() if k not in ("seconds", "stage_seconds", "path")}
    files = {name: (out / name).read_bytes() for name in ("offsets.npy", "items.npy", "users.txt", "item_ids.txt")}
    return {"files": files, "summary": summary, "sha256": meta["sha256"]}


BOTH_PATHS_SPECS = [
    ImportSpec(user="user", item="item", time="ts"),
    ImportSpec(user="user", item="item"),
    ImportSpec(user="user", item="item", time="ts", kcore=3),
    ImportSpec(user="user", item="item", time="ts", kcore=2, min_length=6, dedupe_consecutive=True),
    ImportSpec(user="user", item="item", time="ts", rating="rating", min_rating=3, event="event", events=("buy",),
               min_length=2),
    ImportSpec(user="user", item="item", dedupe_consecutive=True, kcore=2),
]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("spec", BOTH_PATHS_SPECS, ids=range(len(BOTH_PATHS_SPECS)))
def test_in_memory_and_duckdb_paths_write_the_same_bytes(tmp_path, monkeypatch, fmt, spec):
    from elcrec.training import import_arrays
    from elcrec.training.importer import Engine

    rows = random_log(3_000, seed=len(spec.columns()) + spec.kcore)
    write = write_csv if fmt == "csv" else write_parquet
    log = write(tmp_path / f"log.{fmt}", [tuple(None if v == "" else v for v in r) for r in rows]
                if fmt == "parquet" else rows)
    monkeypatch.setattr(import_arrays, "FETCH_ROWS", 700)  # several fetches, with gaps where rows were dropped
    monkeypatch.setattr(import_arrays, "CHUNK", 900)
    monkeypatch.setattr(import_arrays, "SORT_ROWS", 500)  # the sort in parts
    mem = import_logs([log], tmp_path / "mem", spec, Engine(in_memory=True))
    duck = import_logs([log], tmp_path / "duck", spec, Engine(in_memory=False))
    assert mem["summary"]["path"].startswith("in memory") and duck["summary"]["path"].startswith("DuckDB")
    assert written(tmp_path / "mem") == written(tmp_path / "duck")
    assert mem["summary"]["interactions"] > 100


def test_times_with_fractions_and_nan_order_alike_on_both_paths(tmp_path):
    from elcrec.training.importer import Engine

    rows = [("u1", "a", 2.5), ("u1", "b", -1), ("u1", "c", "nan"), ("u1", "d", 2.5), ("u1", "e", "-0.0"),
            ("u1", "f", 0), ("u2", "a", 1e300), ("u2", "b", -1e300)]
    log = write_csv(tmp_path / "log.csv", rows, header=["user", "item", "ts"])
    import_logs([log], tmp_path / "mem", SPEC, Engine(in_memory=True))
    import_logs([log], tmp_path / "duck", SPEC, Engine(in_memory=False))
    assert written(tmp_path / "mem") == written(tmp_path / "duck")
    assert sequences(tmp_path / "mem") == {"u1": ["b", "e", "f", "a", "d", "c"], "u2": ["b", "a"]}


def test_the_path_is_chosen_by_the_memory_limit_and_said_in_the_summary(tmp_path, monkeypatch):
    from elcrec.training import import_arrays
    from elcrec.training.importer import Engine, parse_size

    assert (parse_size("3GB"), parse_size("300MB"), parse_size("1.5 GiB"), parse_size("lots")) == (
        3 * 10**9, 3 * 10**8, 3 * 2**29, None)
    log = write_csv(tmp_path / "log.csv", ROWS)
    meta = import_logs([log], tmp_path / "small", SPEC, Engine(memory_limit="300MB"))
    assert meta["summary"]["path"] == "in memory (5 rows: 360 bytes of arrays within the memory limit 300MB)"
    monkeypatch.setattr(import_arrays, "BYTES_PER_ROW", 10**8)  # as if each row took 100 MB
    meta = import_logs([log], tmp_path / "large", SPEC, Engine(memory_limit="300MB"))
    assert meta["summary"]["path"].startswith("DuckDB, out of core (5 rows: 500,000,260 bytes of arrays in memory "
                                                "would exceed")
    assert written(tmp_path / "small") == written(tmp_path / "large")


def test_a_hash_collision_falls_back_to_duckdb_with_the_same_result(tmp_path, monkeypatch):
    from elcrec.training import import_arrays

    log = write_csv(tmp_path / "log.csv", ROWS)
    import_logs([log], tmp_path / "mem", SPEC)
    monkeypatch.setattr(import_arrays, "unique_keys", lambda keys: False)
    meta = import_logs([log], tmp_path / "duck", SPEC)
    assert meta["summary"]["path"] == "DuckDB (two ids share a hash)"
    assert written(tmp_path / "mem") == written(tmp_path / "duck")


@pytest.mark.parametrize("in_memory", [True, False])
def test_an_id_with_a_line_break_is_refused_on_either_path(tmp_path, in_memory):
    from elcrec.training.importer import Engine

    log = tmp_path / "log.csv"
    log.write_text('user,item,ts\n"u\n1",a,1\nu2,a,2\n')
    with pytest.raises(Exception, match=r"user id 'u\\n1' holds a line break"):
        import_logs([log], tmp_path / "ds", SPEC, Engine(in_memory=in_memory))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def write_numeric_parquet(path: Path, rows: list[tuple], user_type: str = "BIGINT", item_type: str = "INTEGER") -> Path:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t (user {user_type}, item {item_type}, ts TIMESTAMP, rating INTEGER, event VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    return path


def numeric_kinds(monkeypatch) -> list[dict[str, str]]:
    """The type each import from now on read the user and item ids as (its table's, after the read)."""
    from elcrec.training.importer import Importer

    kinds: list[dict[str, str]] = []
    read = Importer.read

    def spy(self, sources):
        read(self, sources)
        kinds.append({str(r[0]): str(r[1]) for r in self.con.execute("DESCRIBE raw").fetchall() if r[0] in "ui"})

    monkeypatch.setattr(Importer, "read", spy)
    return kinds


def numeric_log(n: int, seed: int, big: int | None = 2**40) -> list[tuple]:
    """random_log with integer ids whose text order is not their numeric order (9 < 10 < 100, but "10" < "9"),
    negative ones among them, and some missing. The items' ids span a narrow range (a table looks them up); with
    `big` one user id is that large, so that the users' span is wide (their hashes look them up), without it the
    users' ids are -7, -5, ... (a table again)."""
    ids = [9, 10, 100, -3, 0, 7, 70, 700, 71, 8]

    def user(k: int) -> int:
        if big is None:
            return 2 * k - 7
        return big if k == 1 else ids[k % 10] + 1000 * (k // 10)

    return [(None if u == "" else user(int(u[1:])), None if i == "" else ids[int(i[1:]) % 10] * 3 + int(i[1:]) // 10,
             t, r, e) for u, i, t, r, e in random_log(n, seed)]


@pytest.mark.parametrize("big", [2**40, None], ids=["wide", "narrow"])
@pytest.mark.parametrize("spec", BOTH_PATHS_SPECS, ids=range(len(BOTH_PATHS_SPECS)))
def test_integer_ids_in_parquet_import_as_their_text_would(tmp_path, monkeypatch, spec, big):
    from elcrec.training import import_arrays
    from elcrec.training.importer import Engine

    rows = numeric_log(3_000, seed=len(spec.columns()) + spec.kcore, big=big)
    numbers = write_numeric_parquet(tmp_path / "numbers.parquet", rows)
    text = write_csv(tmp_path / "text.csv", [tuple("" if v is None else v for v in r) for r in rows])
    monkeypatch.setattr(import_arrays, "FETCH_ROWS", 700)
    monkeypatch.setattr(import_arrays, "SORT_ROWS", 500)
    kinds = numeric_kinds(monkeypatch)
    got = {}
    for name, log in (("numbers", numbers), ("text", text)):
        for in_memory in (True, False):
            import_logs([log], tmp_path / f"{name}-{in_memory}", spec, Engine(in_memory=in_memory))
            got[name, in_memory] = written(tmp_path / f"{name}-{in_memory}")
    # numbers kept (the users' in 64 bits where 2^40 is one of them, else in 32 by the file's statistics), then text
    assert kinds == [{"u": "BIGINT" if big else "INTEGER", "i": "INTEGER"}] * 2 + [{"u": "VARCHAR", "i": "VARCHAR"}] * 2
    assert all(g == got["text", True] for g in got.values())  # the same bytes from numbers as from their text
    users = (tmp_path / "numbers-True" / "users.txt").read_text().split()
    assert users == sorted(users) and ("-3" in users and "1099511627776" in users if big else "-7" in users)


def test_integer_ids_beside_a_text_part_are_read_as_text(tmp_path, monkeypatch):
    rows = numeric_log(400, seed=5, big=2**31 - 1)
    half = len(rows) // 2
    numbers = write_numeric_parquet(tmp_path / "a.parquet", rows[:half], user_type="INTEGER", item_type="SMALLINT")
    text = write_csv(tmp_path / "b.csv", [tuple("" if v is None else v for v in r) for r in rows[half:]])
    whole = write_csv(tmp_path / "whole.csv", [tuple("" if v is None else v for v in r) for r in rows])
    kinds = numeric_kinds(monkeypatch)
    import_logs([numbers], tmp_path / "numbers", SPEC)
    import_logs([numbers, text], tmp_path / "parts", SPEC)
    assert kinds[0] == {"u": "INTEGER", "i": "INTEGER"} and kinds[1] == {"u": "VARCHAR", "i": "VARCHAR"}
    import_logs([whole], tmp_path / "whole", SPEC)
    assert written(tmp_path / "parts")["files"] == written(tmp_path / "whole")["files"]
