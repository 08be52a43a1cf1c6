"""The service on a large synthetic catalog: export with a stored approximate index, start-up, latency.

    python -m bench.serve_large_catalog [--items 1000000] [--index HNSW32] [--params efSearch=64]
                                        [--duration 15] [--rebuild] [--json]

1. Builds a random ELCRec model (n_items=N, d=64, 1 layer, 8 intents) whose item table is replaced by the
   clustered synthetic catalog of bench.catalog_scale (a random table would be an unrealistically hard,
   structure-free case for an approximate index), and writes it with model.artifact Store.write_version and
   the index stored (index.faiss, its factory string in the manifest, checksummed). Item ids are strings.
2. Starts `elcrec serve` with ELCREC_INDEX=<index> (so the stored index is used) and measures the time
   from process start to the first 200 from /health/ready; with --rebuild, also with an equivalent
   factory string that differs as text (HNSW32,Flat for HNSW32), so the service builds the same index.
3. Checks served results against exact search: recall@10 of 200 requests (history of 20 items, seen
   items excluded) against the exact top 10 computed here from the same weights.
4. Runs a bounded load at 4 connections on loopback (wrk when installed, else bench.harness's httpx
   generator): POST /v1/recommend with explicit histories, k=10; reports throughput and p50/p99.

The in-process history store is used (no Redis): the figures are the model, retrieval and HTTP path.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import torch

from bench.catalog_scale import synthetic_catalog
from bench.harness import LUA_RECOMMEND_HISTORY, free_port, rss_mib, run_httpx, run_wrk, stop_processes
from elcrec.model.artifact import ManifestInfo, Store
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec

HOST = "127.0.0.1"
ELCREC = Path(sys.executable).parent / "elcrec"
HISTORY = 20
TABLE_SCALE = 0.3  # synthetic norms (~11) to those of a trained table (~3.3)


def build_model(n_items: int, seed: int = 0) -> ELCRec:
    torch.manual_seed(seed)
    model = ELCRec(
        ModelConfig(n_items=n_items, d=64, n_layers=1, n_intents=8, max_len=50, dropout=0.0, attn_dropout=0.0)
    )
    items, _ = synthetic_catalog(n_items, 1, dim=64, seed=seed)
    with torch.no_grad():
        model.item_embeddings.weight[1:-1] = torch.from_numpy(items) * TABLE_SCALE
        model.intent_centers.normal_()
    return model.eval()


def exact_unseen(model: ELCRec, histories: list[list[int]], k: int) -> list[list[int]]:
    """Rows of the exact top k (inner product, seen, padding and mask rows excluded) per history."""
    T = model.cfg.max_len
    ids = torch.tensor([[0] * (T - len(h)) + h[-T:] for h in histories])
    with torch.inference_mode():
        user = model(ids)[:, -1]  # (B, d)
        scores = user @ model.item_table().T  # (B, N + 2)
        scores[:, [0, model.cfg.n_items + 1]] = -torch.inf
        for i, h in enumerate(histories):
            scores[i, h] = -torch.inf
        return scores.topk(k, dim=1).indices.tolist()


def start_service(
    store: Path, spec: str, params: str, threads: int, log: Path
) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start `elcrec serve`; return the process, its base URL and the seconds until /health/ready said 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELCREC_")}
    env.update(
        ELCREC_INDEX=spec,
        ELCREC_INDEX_PARAMS=params,
        ELCREC_THREADS=str(threads),
        ELCREC_LOG_LEVEL="info",
        ELCREC_POLL_INTERVAL_S="3600",
    )
    base = f"http://{HOST}:{port}"
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(ELCREC), "serve", "--artifacts", str(store), "--host", HOST, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = start + 1800
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return proc, base, time.perf_counter() - start
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit(f"the service was not ready after 1800 s:\n{log.read_text()[-3000:]}")


def equivalent_spec(spec: str) -> str:
    """The same index under another factory string, so that the service does not take the stored one."""
    if spec.startswith("HNSW") and "," not in spec:
        return spec + ",Flat"  # IndexHNSWFlat either way
    raise SystemExit(f"no equivalent spelling of {spec!r} is known: give one with --rebuild-spec")


Say = Callable[..., None]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--index", default="HNSW32", help="FAISS index-factory string, stored and served")
    parser.add_argument("--params", default="efSearch=64", help="ELCREC_INDEX_PARAMS for the service")
    parser.add_argument("--threads", type=int, default=1, help="ELCREC_THREADS for the service")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load (1-120)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rebuild", action="store_true", help="also time a start-up that builds the index")
    parser.add_argument("--rebuild-spec", help="factory string for --rebuild (default: the index's, respelt)")
    parser.add_argument(
        "--store", type=Path, help="artifact store to write (default: a temporary one, removed)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be between 1 and 120 seconds")
    return args


def export(args: argparse.Namespace, store: Path, report: dict[str, Any], say: Say) -> tuple[ELCRec, list[str | None]]:
    """Step 1: the model written with its index stored -> (the model, row -> item id)."""
    t0 = time.perf_counter()
    model = build_model(args.items)
    ids: list[str | None] = [None] + [f"item-{r}" for r in range(1, args.items + 1)] + [None]
    report["model_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    info = ManifestInfo(origin={"kind": "synthetic"}, popular_items=tuple(i for i in ids[1:101] if i is not None),
                        intent_shares=(1 / 8,) * 8)
    version = Store(store).write_version(model, ids, info, index_spec=args.index)
    report["export_s"] = time.perf_counter() - t0
    report["artifact_mb"] = {p.name: p.stat().st_size / 2**20 for p in sorted(version.iterdir())}
    say(
        f"exported {version} in {report['export_s']:.1f} s: "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in report["artifact_mb"].items())
    )
    return model, ids


def served_recall(base: str, model: ELCRec, ids: list[str | None], rng: random.Random) -> float:
    """Step 3: recall@10 of 200 served requests against exact search."""
    n_items = model.cfg.n_items
    histories = [rng.sample(range(1, n_items + 1), HISTORY) for _ in range(200)]
    truth = exact_unseen(model, histories, 10)
    hits = 0
    with httpx.Client(base_url=base, timeout=30) as c:
        for h, t in zip(histories, truth, strict=True):
            r = c.post("/v1/recommend", json={"history": [ids[x] for x in h], "k": 10})
            r.raise_for_status()
            got = [it["item_id"] for it in r.json()["items"]]
            assert len(got) == 10 and not set(got) & {ids[x] for x in h}, got
            hits += len(set(got) & {ids[x] for x in t})
    return hits / (10 * len(histories))


def measure_load(args: argparse.Namespace, base: str, ids: list[str | None], rng: random.Random) -> dict[str, Any]:
    """Step 4: a warm-up, then --duration seconds of explicit-history requests."""
    bodies = [
        {"history": [ids[x] for x in rng.sample(range(1, args.items + 1), HISTORY)], "k": 10}
        for _ in range(200)
    ]
    script = LUA_RECOMMEND_HISTORY % {
        "bodies": ", ".join("'" + json.dumps(b, separators=(",", ":")) + "'" for b in bodies)
    }
    wrk = shutil.which("wrk") is not None

    def load(conns: int, duration: int) -> dict[str, Any]:
        if wrk:
            return run_wrk(base + "/v1/recommend", conns, duration, script)
        return run_httpx(base, "POST", "/v1/recommend", bodies, conns, duration)

    load(args.connections, 3)  # warm-up
    result = load(args.connections, args.duration)
    return {"generator": "wrk" if wrk else "httpx", "connections": args.connections, "duration_s": args.duration,
            **result}


def serve_stored(
    args: argparse.Namespace, store: Path, workdir: Path, model: ELCRec, ids: list[str | None],
    report: dict[str, Any], say: Say,
) -> None:
    """Steps 2-4 on a service that loads the stored index."""
    proc, base, ready_s = start_service(store, args.index, args.params, args.threads, workdir / "serve.log")
    try:
        report["startup_stored_s"] = ready_s
        log_text = (workdir / "serve.log").read_text()
        report["stored_index_used"] = f"stored index {args.index!r}" in log_text
        report["service_rss_mb"] = rss_mib(proc.pid)
        say(
            f"ready after {ready_s:.1f} s (stored index used: {report['stored_index_used']}, "
            f"RSS {report['service_rss_mb']:.0f} MB)"
        )
        rng = random.Random(0)
        report["served_recall@10"] = served_recall(base, model, ids, rng)
        say(f"served recall@10 against exact search: {report['served_recall@10']:.3f} (200 requests)")
        report["load"] = measure_load(args, base, ids, rng)
        report["load_avg_1m"] = os.getloadavg()[0]
        result = report["load"]
        say(
            f"{args.connections} connections, {args.duration} s: {result['rps']:.0f} req/s, "
            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, non-2xx {result['non_2xx']}"
        )
    finally:
        stop_processes([proc])


def time_rebuild(args: argparse.Namespace, store: Path, workdir: Path, report: dict[str, Any], say: Say) -> None:
    """Step 2's other half: start-up when the service builds the same index itself."""
    other = args.rebuild_spec or equivalent_spec(args.index)
    proc, _, ready_s = start_service(store, other, args.params, args.threads, workdir / "serve2.log")
    stop_processes([proc])
    report["startup_rebuild_s"] = ready_s
    report["rebuild_spec"] = other
    say(f"ready after {ready_s:.1f} s when it builds {other!r} itself")


def main() -> None:
    args = parse_args()
    say: Say = (
        (lambda *a: print(*a, file=sys.stderr, flush=True))
        if args.json
        else (lambda *a: print(*a, flush=True))
    )
    workdir = Path(tempfile.mkdtemp(prefix="elcrec-large-"))
    store = args.store or workdir / "store"
    report: dict[str, Any] = {
        "items": args.items,
        "index": args.index,
        "params": args.params,
        "threads": args.threads,
        "cpus": os.cpu_count(),
    }
    try:
        model, ids = export(args, store, report, say)
        serve_stored(args, store, workdir, model, ids, report, say)
        if args.rebuild:
            time_rebuild(args, store, workdir, report, say)
        if args.json:
            print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the store too, unless --store put it elsewhere


if __name__ == "__main__":
    main()
