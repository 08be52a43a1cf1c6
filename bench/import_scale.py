"""Importing interaction logs at scale, and what training holds in memory for such a data set.

    python -m bench.import_scale generate --rows 100000000 --out /work/scratch/import   (log.csv, log.parquet,
        log_int.parquet)
    python -m bench.import_scale import LOG --out DIR [--kcore 5] [--engine duckdb|polars] [--memory-limit 300MB]
    python -m bench.import_scale train-memory DIR [--list-users]
    python -m bench.import_scale parquet-floor LOG.parquet     (needs pyarrow, which elcrec does not depend on)

`generate` writes a synthetic log with DuckDB: `--users` users drawn uniformly, items of Zipf popularity
(P(rank r) ~ 1/r over `--items` items), a timestamp within 2020 and a rating 1..5; columns user_id, item_id, ts,
rating. Rows are a hash of the row number, so the same arguments give the same log. log_int.parquet is the same
log with the ids as numbers (the text's digits).

`import` runs the import in a child process (`python -m elcrec data import`, or the polars pipeline below with
`--engine polars`) and reports wall time, rows/s and the child's peak RSS (`/usr/bin/time -v`), with
/proc/loadavg before and after: two cores here are shared with other jobs.

`parquet-floor` times, in a child process, the string work that any importer of a Parquet log with text ids must do
before it can sort: read the two id columns and the time, and number each id column (one dictionary over the whole
column), with pyarrow's Parquet reader and hash kernels on two threads instead of DuckDB's: whether another engine
would leave room for 3 M rows/s on these two cores (docs/IMPORT.md).

`train-memory` loads an imported data set (memory-mapped) and builds what the Trainer builds before its first batch
(splits, negative sampler, model, optimizer), then runs one batch; it reports the peak RSS (ru_maxrss) after each
stage. Run against the parent commit's training/ it shows what the trainer held before it built batches from the
flat arrays (docs/IMPORT.md has both and the commands).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DAY_SECONDS = 86_400


def generate(out: Path, rows: int, users: int, items: int, threads: int = 2) -> dict[str, Any]:
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    # hash(i, k) / 2^64 is a uniform draw per row and stream k, the same whatever the thread count.
    select = f"""
        SELECT 'u' || (hash(i, 1) % {users}) AS user_id,
               'i' || CAST(floor(exp((hash(i, 2) % 1000000000) / 1e9 * ln({items} + 1))) AS BIGINT) AS item_id,
               TIMESTAMP '2020-01-01' + to_seconds(CAST(hash(i, 3) % (365 * {DAY_SECONDS}) AS BIGINT)) AS ts,
               1 + hash(i, 4) % 5 AS rating
        FROM range({rows}) t(i)"""
    took = {}
    # the same log with the ids as numbers (the text less its letter, BIGINT), as a database would number them
    numeric = ("SELECT CAST(substr(user_id, 2) AS BIGINT) AS user_id, CAST(substr(item_id, 2) AS BIGINT) AS item_id, "
               f"ts, rating FROM ({select})")
    parquet = "(FORMAT parquet, ROW_GROUP_SIZE 1000000)"
    for name, query, fmt in (("log.csv", select, "(HEADER)"), ("log.parquet", select, parquet),
                             ("log_int.parquet", numeric, parquet)):
        start = time.perf_counter()
        con.execute(f"COPY ({query}) TO '{out / name}' {fmt}")
        took[name] = {"seconds": round(time.perf_counter() - start, 1), "bytes": (out / name).stat().st_size}
    return {"rows": rows, "users": users, "items": items, "files": took}


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def timed_child(cmd: list[str]) -> dict[str, Any]:
    """Run cmd under /usr/bin/time -v: wall seconds, peak RSS (MiB), load averages around it, exit status."""
    before = loadavg()
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    return {
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),  # user + system: what the run cost, whatever else the cores were running
        "peak_rss_mib": round(int(peak.group(1)) / 1024) if peak else None,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "returncode": proc.returncode,
        "stdout_tail": proc.stdout[-3000:],
        "stderr_tail": proc.stderr[-1500:] if proc.returncode else "",
    }


def import_log(log: Path, out: Path, kcore: int, engine: str, extra: list[str]) -> dict[str, Any]:
    if engine == "duckdb":
        cmd = [sys.executable, "-m", "elcrec", "data", "import", str(log), "--out", str(out), "--user", "user_id",
               "--item", "item_id", "--time", "ts", "--threads", "2", "--no-progress", *extra]
        if kcore:
            cmd += ["--kcore", str(kcore)]
    else:
        cmd = [sys.executable, "-m", "bench.import_scale", "_polars", str(log), str(out), str(kcore)]
    result = timed_child(cmd)
    rows = None
    if result["returncode"] == 0:
        if engine == "duckdb":
            rows = json.loads((out / "dataset.json").read_text())["summary"]["rows_read"]
        else:
            rows = json.loads(result["stdout_tail"].strip().splitlines()[-1])["rows_read"]
        result["rows_read"] = rows
        result["rows_per_s"] = round(rows / result["seconds"])
        result["rows_per_cpu_s"] = round(rows / max(result["cpu_seconds"], 0.1))
    return {"engine": engine, "log": str(log), "kcore": kcore, **result}


def polars_pipeline(log: Path, out: Path, kcore: int) -> dict[str, Any]:
    """The same work as the DuckDB importer's core, in polars (lazy, streaming): read, drop null ids, order each
    user's items by time then file order, k-core, internal ids by popularity, write items/offsets/ids. Used only
    to choose the engine (docs/IMPORT.md): no summary beyond the counts, no error reporting."""
    import numpy as np
    import polars as pl

    os.environ.setdefault("POLARS_MAX_THREADS", "2")
    # CSV: every column as text, as the DuckDB importer reads it
    lf = pl.scan_parquet(log) if log.suffix == ".parquet" else pl.scan_csv(log, infer_schema=False)
    lf = lf.with_row_index("pos").select(
        pl.col("pos"), pl.col("user_id").cast(pl.String).alias("u"), pl.col("item_id").cast(pl.String).alias("i"),
        pl.col("ts").cast(pl.String).str.to_datetime().alias("t") if log.suffix != ".parquet" else pl.col("ts").alias("t"),
    )
    rows_read = lf.select(pl.len()).collect(engine="streaming").item()
    df = lf.drop_nulls(["u", "i"]).collect(engine="streaming")
    while kcore:
        n = df.height
        for key in ("i", "u"):
            kept = df.group_by(key).len().filter(pl.col("len") >= kcore).select(key)
            df = df.join(kept, on=key, how="semi")
        if df.height == n:
            break
    items = df.group_by("i").agg(pl.len().alias("n")).sort(["n", "i"], descending=[True, False])
    items = items.with_row_index("iid", offset=1)
    df = df.join(items.select("i", "iid"), on="i").sort(["u", "t", "pos"])
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "items.npy", df["iid"].cast(pl.Int32).to_numpy())
    counts = df.group_by("u", maintain_order=True).len()
    np.save(out / "offsets.npy", np.concatenate([[0], np.cumsum(counts["len"].to_numpy())]).astype(np.int64))
    (out / "users.txt").write_text("\n".join(counts["u"].to_list()) + "\n")
    (out / "item_ids.txt").write_text("\n".join(items["i"].to_list()) + "\n")
    return {"rows_read": rows_read, "interactions": df.height, "users": counts.height, "items": items.height}


def parquet_floor(log: Path) -> dict[str, Any]:
    """Seconds of pyarrow reading user_id, item_id and ts, then dictionary-encoding each id column whole."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        sys.exit("parquet-floor needs pyarrow (pip install pyarrow); elcrec itself does not use it")
    pa.set_cpu_count(2)
    pa.set_io_thread_count(2)
    seconds = {}
    start = time.perf_counter()
    table = pq.read_table(log, columns=["user_id", "item_id", "ts"])
    seconds["read"] = time.perf_counter() - start
    distinct = {}
    for column in ("user_id", "item_id"):
        start = time.perf_counter()
        # one array, so that the dictionary is the column's, not one per row group
        codes = pc.dictionary_encode(table.column(column).combine_chunks())
        seconds[f"number {column}"] = time.perf_counter() - start
        distinct[column] = len(codes.dictionary)
        del codes
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"rows": table.num_rows, "distinct": distinct, "pyarrow": pa.__version__,
            "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
            "total_seconds": round(sum(seconds.values()), 1),
            "cpu_seconds_self": round(usage.ru_utime + usage.ru_stime, 1)}


def peak_mib() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def train_memory(path: Path, list_users: bool) -> dict[str, Any]:
    """Peak RSS after each stage of what the Trainer builds before its first batch. Run with this checkout's
    training/ for the flat arrays; for the figures before them, with the parent commit's training/ on PYTHONPATH
    (plus training/dataset.py to load the arrays) and `--list-users`, as its read_interactions gave a list."""
    import numpy as np

    from elcrec.model.config import ModelConfig
    from elcrec.training import dataset
    from elcrec.training.config import TrainConfig
    from elcrec.training.data import Interactions
    from elcrec.training.trainer import Trainer

    stages: dict[str, Any] = {"start": peak_mib()}
    start = time.perf_counter()
    meta, offsets, items, users, item_ids = dataset.load_arrays(path)
    names: Any = list(users) if list_users else users
    data = Interactions(names, items, offsets, len(item_ids), dataset.fingerprint(meta), str(path))
    stages["load (memory-mapped)" + (", users as list[str]" if list_users else "")] = peak_mib()
    mcfg = ModelConfig(n_items=data.n_items, pooling="real")
    trainer = Trainer(mcfg, TrainConfig(seed=1, bucket=True), data, progress=False, log=lambda _: None)
    stages["Trainer built (splits, negative sampler, model, optimizer)"] = peak_mib()
    trainer.step(trainer.batches()[0])
    stages["first batch (one step)"] = peak_mib()
    return {
        "data": str(path), "users": data.n_users, "items": data.n_items, "interactions": int(len(data.items)),
        "train_rows": len(trainer.train.users), "peak_rss_mib": stages, "seconds": round(time.perf_counter() - start, 1),
        "batch_size": int(np.int64(trainer.cfg.batch_size)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--rows", type=int, default=100_000_000)
    g.add_argument("--users", type=int, default=5_000_000)
    g.add_argument("--items", type=int, default=1_000_000)
    g.add_argument("--out", type=Path, required=True)
    i = sub.add_parser("import")
    i.add_argument("log", type=Path)
    i.add_argument("--out", type=Path, default=None, help="default: a temporary directory, removed after")
    i.add_argument("--kcore", type=int, default=0)
    i.add_argument("--engine", choices=("duckdb", "polars"), default="duckdb")
    i.add_argument("--memory-limit", default=None, help="elcrec data import's --memory-limit (default: its own)")
    p = sub.add_parser("_polars")
    p.add_argument("log", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("kcore", type=int)
    f = sub.add_parser("parquet-floor")
    f.add_argument("log", type=Path)
    f.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    m = sub.add_parser("train-memory")
    m.add_argument("data", type=Path)
    m.add_argument("--list-users", action="store_true")
    args = ap.parse_args()
    if args.cmd == "generate":
        print(json.dumps(generate(args.out, args.rows, args.users, args.items), indent=2))
    elif args.cmd == "_polars":
        print(json.dumps(polars_pipeline(args.log, args.out, args.kcore)))
    elif args.cmd == "parquet-floor":
        if args.child:
            print(json.dumps(parquet_floor(args.log)))
        else:
            result = timed_child([sys.executable, "-m", "bench.import_scale", "parquet-floor", str(args.log), "--child"])
            if result["returncode"] == 0:
                result.update(json.loads(result.pop("stdout_tail").strip().splitlines()[-1]))
            print(json.dumps(result, indent=2))
    elif args.cmd == "import":
        extra = ["--memory-limit", args.memory_limit] if args.memory_limit else []
        if args.out is None:
            with tempfile.TemporaryDirectory(dir=args.log.parent) as tmp:
                result = import_log(args.log, Path(tmp) / "dataset", args.kcore, args.engine, extra)
        else:
            result = import_log(args.log, args.out, args.kcore, args.engine, extra)
        print(json.dumps(result, indent=2))
    else:
        print(json.dumps(train_memory(args.data, args.list_users), indent=2))


if __name__ == "__main__":
    main()
