"""Catalog-scale retrieval: exact (Flat) against approximate FAISS indexes (IVF, HNSW) on a synthetic catalog.

    python -m bench.catalog_scale --items 1000000 [--dim 64] [--queries 1000] [--json]

The items are a Gaussian mixture (2000 centers of uneven popularity), stretched along a decaying
spectrum, shifted by a common mean and with log-normal norms: calibrated so that the official
Toys_and_Games checkpoint's item table and a 12k-item sample of this one look alike (variance in the top
10/20 principal directions 0.45/0.63 here vs 0.45/0.66 there; mean cosine to the nearest of 100 spherical
k-means centroids 0.65 vs 0.69). Queries come from the same mixture.

Every index is built with model.item_index.build_item_index, as the export and the service build it,
and searched through the inner product. For each setting the benchmark reports single-query throughput
(one query at a time, FAISS on 1 thread), p50/p99 latency of those calls, recall@10 against the exact
top 10 and the build time (FAISS's default threads); also throughput and p99 in CPU time of the searching
thread, which leave out the time other processes held the core. `--json` prints
{"indexes": {"<name>": {"qps", "p50_ms", "p99_ms", "recall@10", "build_s", "cpu_qps", "cpu_p99_ms"}}, ...}.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from typing import Any

import faiss
import numpy as np

from elcrec.model.item_index import build_item_index

K = 10
CHUNK = 100_000


def synthetic_catalog(
    n_items: int, n_queries: int, dim: int = 64, n_centers: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """-> items (n_items, dim) and queries (n_queries, dim), float32, from one clustered distribution."""
    rng = np.random.default_rng(seed)
    scales = np.arange(1, dim + 1, dtype=np.float32) ** -0.35  # a decaying spectrum, like trained tables
    scales *= np.sqrt(dim / (scales**2).sum())
    centers = rng.standard_normal((n_centers, dim), dtype=np.float32)
    mean = rng.standard_normal(dim, dtype=np.float32)
    mean *= 0.5 * np.sqrt(2 * dim) / np.linalg.norm(mean)  # a common offset, half a typical spread
    popularity = rng.lognormal(0.0, 1.0, n_centers)
    popularity /= popularity.sum()

    def draw(n: int) -> np.ndarray:
        out = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            x = centers[rng.choice(n_centers, size=m, p=popularity)]
            x += rng.standard_normal((m, dim), dtype=np.float32)
            x *= scales
            x += mean
            x *= rng.lognormal(0.0, 0.19, size=(m, 1)).astype(np.float32)  # norm spread of a trained table
            out[start : start + m] = x
        return out

    return draw(n_items), draw(n_queries)


def exact_top(items: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """(Q, k) labels of the exact inner-product top k (batched, all threads)."""
    index = faiss.IndexFlatIP(items.shape[1])
    index.add(items)
    return index.search(queries, k)[1]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    if found.shape != truth.shape:
        raise ValueError(f"found {found.shape} and truth {truth.shape} differ")
    k = truth.shape[1]
    return float(
        np.mean([len(set(f) & set(t)) / k for f, t in zip(found.tolist(), truth.tolist(), strict=True)])
    )


def single_query_timing(
    index: faiss.Index, queries: np.ndarray, k: int = K
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search one query at a time -> wall-clock and CPU-time latencies in seconds (Q,) each, labels (Q, k).

    CPU time (this thread's) leaves out the time the scheduler gave the core to other processes: on a
    shared machine it shows what the search itself costs. Set FAISS's threads before calling."""
    for q in queries[: min(50, len(queries))]:  # warm caches and lazy allocations
        index.search(q[None], k)
    wall = np.empty(len(queries))
    cpu = np.empty(len(queries))
    labels = np.empty((len(queries), k), dtype=np.int64)
    for i, q in enumerate(queries):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        _, labels[i] = index.search(q[None], k)
        wall[i] = time.perf_counter() - t0
        cpu[i] = time.thread_time() - c0
    return wall, cpu, labels


def settings_for(n_items: int) -> list[tuple[str, list[str]]]:
    """(factory string, search-parameter strings) to try: Flat, IVF at ~sqrt(N) and ~4 sqrt(N) lists, HNSW32."""
    root = np.sqrt(n_items)
    out: list[tuple[str, list[str]]] = [("Flat", [""])]
    for lists in sorted({2 ** round(np.log2(root)), 2 ** round(np.log2(4 * root))}):
        out.append((f"IVF{lists},Flat", [f"nprobe={p}" for p in (16, 32, 64, 128, 256) if p <= lists // 2]))
    out.append(("HNSW32", [f"efSearch={e}" for e in (16, 32, 64, 128, 256)]))
    return out


def run(
    n_items: int, dim: int, n_queries: int, specs: list[tuple[str, list[str]]], log: Any = print
) -> dict[str, dict[str, float]]:
    items, queries = synthetic_catalog(n_items, n_queries, dim)
    truth = exact_top(items, queries)
    results: dict[str, dict[str, float]] = {}
    for spec, params_list in specs:
        start = time.perf_counter()
        index = build_item_index(items, spec)
        build_s = time.perf_counter() - start
        for params in params_list:
            if params:
                faiss.ParameterSpace().set_index_parameters(index, params)
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                wall, cpu, labels = single_query_timing(index, queries)
            finally:
                faiss.omp_set_num_threads(threads)
            name = f"{spec} {params}".strip()
            results[name] = {
                "qps": len(queries) / float(wall.sum()),
                "p50_ms": float(np.percentile(wall, 50) * 1e3),
                "p99_ms": float(np.percentile(wall, 99) * 1e3),
                "recall@10": recall_at_k(labels, truth),
                "build_s": build_s,
                "cpu_qps": len(queries) / float(cpu.sum()),
                "cpu_p99_ms": float(np.percentile(cpu, 99) * 1e3),
            }
            log(name, results[name])
        del index
        gc.collect()
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    flat_qps = results.get("Flat", {}).get("qps")
    lines = [
        f"{'index':<28} {'build s':>8} {'qps':>9} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>9} {'x Flat':>7}"
        f" {'CPU qps':>9} {'CPU p99':>8}",
    ]
    for name, r in results.items():
        speedup = f"{r['qps'] / flat_qps:7.1f}" if flat_qps else "      -"
        lines.append(
            f"{name:<28} {r['build_s']:8.1f} {r['qps']:9.0f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f}"
            f" {r['recall@10']:9.3f} {speedup} {r['cpu_qps']:9.0f} {r['cpu_p99_ms']:8.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, required=True, help="catalog size N")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000, help="single queries timed per setting")
    parser.add_argument(
        "--index",
        action="append",
        metavar="SPEC[:PARAMS;PARAMS]",
        help="only these settings, e.g. 'IVF4096,Flat:nprobe=16;nprobe=32' or 'HNSW32:efSearch=64' (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.items < 100 or args.dim < 1 or args.queries < 1:
        parser.error("--items must be >= 100, --dim and --queries >= 1")
    if args.index:
        specs = [(s.split(":")[0], s.split(":", 1)[1].split(";") if ":" in s else [""]) for s in args.index]
        if not any(spec == "Flat" for spec, _ in specs):
            specs.insert(0, ("Flat", [""]))  # the reference every speed-up is measured against
    else:
        specs = settings_for(args.items)

    def log(name: str, r: dict[str, float]) -> None:
        if not args.json:
            print(
                f"  {name}: {r['qps']:.0f} qps, p99 {r['p99_ms']:.3f} ms, recall@10 {r['recall@10']:.3f}",
                flush=True,
            )

    if not args.json:
        print(f"{args.items} items x {args.dim}, {args.queries} queries; {os.cpu_count()} CPUs", flush=True)
    results = run(args.items, args.dim, args.queries, specs, log)
    conditions = {
        "search_threads": 1,
        "build_threads": faiss.omp_get_max_threads(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "faiss": faiss.__version__,
        "python": platform.python_version(),
    }
    if args.json:
        print(
            json.dumps(
                {
                    "items": args.items,
                    "dim": args.dim,
                    "queries": args.queries,
                    "indexes": results,
                    "conditions": conditions,
                },
                indent=2,
            )
        )
    else:
        print(table(results))
        print(f"conditions: {conditions}")


if __name__ == "__main__":
    main()
