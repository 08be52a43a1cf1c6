"""What intent-aware requests cost in ranking and buy in variety, on a data set's test users.

    python -m bench.intent_tradeoff --store STORE --data FILE [--k 10] [--users N] [--out FILE.json]

Each test user's history goes through the service's own inference (service/inference.py run_batch, the exact
index, seen items excluded as the service does) in three modes: *plain* (the model's ranking), *diversify* (the k
places shared among the user's 1 + R nearest intents by probability, as `"diversify": true`) and *second intent*
(ranked towards the user's second nearest intent, as `"intent": ID`). For each: NDCG@k and HIT@k of the held-out
next item, intra-list diversity (mean pairwise 1 - cosine of the listed items' embeddings) and catalog coverage
(the share of the catalog listed to at least one user).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench import write_json
from elcrec.model.artifact import resolve
from elcrec.service.bundle import LoadOptions, build_bundle
from elcrec.service.inference import run_batch
from elcrec.service.queries import Query
from elcrec.training.data import eval_split, read_interactions

RUNNERS_UP = 3  # the service's default (Settings.runner_up_intents)


def measure(
    store: Path, data_path: Path, k: int = 10, users: int | None = None, weight: float = 1.0, batch: int = 256
) -> dict[str, Any]:
    bundle = build_bundle(resolve(store), torch.device("cpu"), LoadOptions(jit=False))
    data = read_interactions(data_path, n_items=bundle.n_items)
    ev = eval_split(data, bundle.max_len, "test")
    n = len(ev.targets) if users is None else min(users, len(ev.targets))
    table = F.normalize(bundle.model.item_table().detach().float()[1:-1], dim=-1)
    out: dict[str, Any] = {"version": bundle.version, "users": n, "k": k, "intents": bundle.n_intents, "weight": weight}
    for mode in ("plain", "diversify", "second intent"):
        ndcg = hit = diversity = 0.0
        listed: set[int] = set()
        for start in range(0, n, batch):
            histories = [[int(r) for r in seen] for seen in ev.seen[start : min(start + batch, n)]]
            base = [Query(h, 0, frozenset(), 2) for h in histories]
            second = [a.intent_ids[-1] for a in run_batch(bundle, base)] if mode == "second intent" else None
            queries = [
                Query(h, k, frozenset(h), 1 + RUNNERS_UP, steer=second[i] if second else None,
                      diversify=mode == "diversify", steer_weight=weight)
                for i, h in enumerate(histories)
            ]
            for i, answer in enumerate(run_batch(bundle, queries)):
                rows = answer.rows
                target = int(ev.targets[start + i])
                if target in rows:
                    hit += 1
                    ndcg += 1 / math.log2(rows.index(target) + 2)
                vecs = table[torch.tensor(rows) - 1]
                sims = vecs @ vecs.T
                m = len(rows)
                diversity += float((m * m - sims.sum()) / (m * (m - 1))) if m > 1 else 0.0
                listed.update(rows)
        out[mode] = {f"NDCG@{k}": round(ndcg / n, 5), f"HIT@{k}": round(hit / n, 5),
                     "diversity": round(diversity / n, 4), "coverage": round(len(listed) / bundle.n_items, 4)}
        print(mode, out[mode], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="artifact store (its CURRENT) or a version dir")
    parser.add_argument("--data", type=Path, required=True, help="the interaction file the model was trained on")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--users", type=int, default=None, help="the first N test users (default: all)")
    parser.add_argument("--weight", type=float, default=1.0, help="the service's ELCREC_INTENT_STEER")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    args = parser.parse_args()
    result = measure(args.store, args.data, args.k, args.users, args.weight)
    write_json(result, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
