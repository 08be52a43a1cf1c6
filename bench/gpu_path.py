"""The serving path per device, precision and retrieval: batch latency, and rankings against fp32.

    python -m bench.gpu_path --artifacts STORE --data FILE [--device auto|cpu|cuda] [--users 2000] [--json]

For each precision (fp32, bf16, fp16) and retrieval (FAISS "Flat" on the host, exact "torch" top-k on the
model's device) it builds the service's bundle for the store's CURRENT version and measures:

  - batch latency of one micro-batch through `service.inference.run_batch` (encoder, intents, top-10 of the
    unseen items) at batch sizes 1, 32 and 256, median of repeated calls, and the implied items/s;
  - on the data file's test split (the first --users users, histories as the service would get them): the share
    of fp32's top-10 items each setting keeps, the share of intents kept, and HIT@10 of both.

The figures are of this machine; the GPU path is the point of it (skip nothing, say where it ran).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elcrec.model.artifact import resolve
from elcrec.service.bundle import LoadOptions, ModelBundle, build_bundle, pick_device
from elcrec.service.inference import run_batch
from elcrec.service.queries import Answer, Query
from elcrec.training.data import eval_split, read_interactions

BATCHES = (1, 32, 256)
PRECISIONS = ("fp32", "bf16", "fp16")
INDEXES = ("Flat", "torch")


def queries_of(split_inputs: np.ndarray, users: int, k: int = 10) -> list[Query]:
    out = []
    for row in split_inputs[:users]:
        rows = [int(r) for r in row if r > 0]
        out.append(Query(rows, k, frozenset(rows), 1))
    return out


def answer_all(bundle: ModelBundle, queries: list[Query], batch: int = 256) -> list[Answer]:
    answers: list[Answer] = []
    for i in range(0, len(queries), batch):
        answers += run_batch(bundle, queries[i : i + batch])
    return answers


def latency_ms(bundle: ModelBundle, queries: list[Query], batch: int, repeats: int) -> float:
    qs = (queries * (batch // max(1, len(queries)) + 1))[:batch]
    run_batch(bundle, qs)
    times = []
    for _ in range(repeats):
        if bundle.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        run_batch(bundle, qs)
        if bundle.device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def measure(
    version: Path, device: torch.device, queries: list[Query], targets: np.ndarray, repeats: int = 20,
    precisions: tuple[str, ...] = PRECISIONS, indexes: tuple[str, ...] = INDEXES, batches: tuple[int, ...] = BATCHES,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One row per (precision, index): agreement with the first setting (fp32, normally), HIT@10 on `targets` (each
    query's next item row) and the batch latencies."""
    reference: list[Answer] | None = None
    rows: list[dict[str, Any]] = []
    for precision in precisions:
        for index in indexes:
            bundle = build_bundle(version, device, LoadOptions(index_spec=index, precision=precision))
            answers = answer_all(bundle, queries)
            if reference is None:
                reference = answers
            kept = np.mean([len(set(a.rows) & set(r.rows)) / max(1, len(r.rows))
                            for a, r in zip(answers, reference, strict=True)])
            identical = np.mean([list(a.rows) == list(r.rows) for a, r in zip(answers, reference, strict=True)])
            same_intent = np.mean([a.intent_ids[0] == r.intent_ids[0] for a, r in zip(answers, reference, strict=True)])
            hit10 = np.mean([t in a.rows for a, t in zip(answers, targets, strict=True)])
            row = {"precision": precision, "index": index, "device": str(device),
                   "top10_kept_vs_fp32": round(float(kept), 4), "top10_identical_vs_fp32": round(float(identical), 4),
                   "intent_kept_vs_fp32": round(float(same_intent), 4),
                   "test_hit@10": round(float(hit10), 4), "probe_check": bundle.precision_check}
            for b in batches:
                ms = latency_ms(bundle, queries, b, repeats)
                row[f"batch{b}_ms"] = round(ms, 3)
                row[f"batch{b}_per_s"] = round(b / ms * 1e3)
            rows.append(row)
            log(f"{precision:5} {index:6} on {device}: kept {row['top10_kept_vs_fp32']:.4f} of fp32 top-10, "
                f"intents {row['intent_kept_vs_fp32']:.4f}, HIT@10 {row['test_hit@10']:.4f}; batch ms "
                + ", ".join(f"{b}: {row[f'batch{b}_ms']:.2f}" for b in batches))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = pick_device(args.device)
    version = resolve(args.artifacts)
    data = read_interactions(args.data)
    test = eval_split(data, 50, "test")
    queries = queries_of(test.inputs, args.users)
    targets = test.targets[: args.users]
    rows = measure(version, device, queries, targets, args.repeats,
                   log=(lambda _: None) if args.json else (lambda line: print(line, flush=True)))
    result = {"artifacts": str(version), "data": args.data.name, "users": len(queries), "results": rows,
              "machine": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                          or platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()}}
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
