"""How many intents a default `elcrec train` should learn for a data set of a given size: the measurement behind
training/intent_count.py's rule (docs/research/INTENTS-NOTES.md, *How many intents without a preset*).

    python -m bench.intent_k subsample --data ../shared/data/Beauty.txt --users 1000 --out /work/scratch/beauty-1k.txt
    python -m bench.intent_k from-csv --csv /work/realdata/ml-100k/interactions.csv --out /work/scratch/ml-100k.txt
    python -m bench.intent_k measure --data FILE [FILE ...] --ks 8,16,32,64 [--epochs 30] [--patience 5]
        [--out docs/bench/intent-k.json]
    python -m bench.intent_k table docs/bench/intent-k-*.json

`subsample` keeps a random set of users (a seed) and renumbers their items 1..N in order of first appearance, so
that the catalog is the items those users touched; `from-csv` turns a `user,item,...,timestamp` log (MovieLens,
/work/realdata) into the same format, each user's items in time order. `measure` trains each file with the default settings of
`elcrec train` (no preset: the balanced intent loss, settled) at each K, the stopping rules given, and reads each
model as export does (calibrated on the training users): the validation NDCG@20 of the kept epoch, the intent
health on the validation users (what picks K; the test users stay unseen) and, for the record, on the test users
with test NDCG@5. Each run appends its row to --out as it ends, so a long measurement can be read, or resumed
(rows already there are skipped), part way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import write_json
from elcrec.training.data import Interactions, read_interactions, write_interactions
from elcrec.training.intent_count import intents_for


def subsample(data: Interactions, users: int, seed: int) -> Interactions:
    """`users` users drawn at random (in their original order), items renumbered 1..N by first appearance."""
    if users > data.n_users:
        raise ValueError(f"cannot draw {users} users from {data.n_users}")
    keep = np.sort(np.random.default_rng(seed).choice(data.n_users, size=users, replace=False))
    ids: dict[int, int] = {}
    seqs = []
    for u in keep:
        seqs.append(np.array([ids.setdefault(int(i), len(ids) + 1) for i in data.sequence(int(u))], dtype=np.int64))
    return Interactions.from_sequences([data.users[int(u)] for u in keep], seqs, len(ids), source="subsample")


def from_csv(path: Path) -> Interactions:
    """A `user,item,...,timestamp` CSV with a header (the MovieLens logs of /work/realdata) as sequences: each user's
    items in time order (ties in file order), items renumbered 1..N by first appearance."""
    rows: dict[str, list[tuple[float, int, str]]] = {}
    with open(path) as fh:
        header = fh.readline().strip().split(",")
        user, item, stamp = header.index("user"), header.index("item"), header.index("timestamp")
        for n, line in enumerate(fh):
            cols = line.rstrip("\n").split(",")
            rows.setdefault(cols[user], []).append((float(cols[stamp]), n, cols[item]))
    ids: dict[str, int] = {}
    seqs = [np.array([ids.setdefault(i, len(ids) + 1) for _, _, i in sorted(r)], dtype=np.int64) for r in rows.values()]
    return Interactions.from_sequences(list(rows), seqs, len(ids), source=str(path))


def measure_one(
    path: Path, data: Interactions, k: int, epochs: int, patience: int, seed: int, trade_off: float | None
) -> dict[str, Any]:
    from elcrec.training.evaluate import evaluate
    from elcrec.training.export import intent_calibration
    from elcrec.training.intent_health import model_health
    from elcrec.training.run import base_settings, resolve_settings
    from elcrec.training.trainer import Trainer

    settings = resolve_settings(
        data.n_items, base_settings(None, False, False), {"n_intents": k, "pooling": "real"},
        {"epochs": epochs, "patience": patience, "seed": seed, "intent_loss": "balanced", "trade_off": trade_off},
    )
    began = time.perf_counter()
    trainer = Trainer(settings.model, settings.train, data, None, "cpu", progress=False)
    model = trainer.fit()
    origin = {"kind": "trained", "train_config": settings.train.to_dict()}
    intents, _ = intent_calibration(model, data, origin)
    valid = model_health(model, data, "valid", intents=intents)
    test = model_health(model, data, "test", intents=intents)
    test_metrics = evaluate(model, data, "test", ("reference",))["reference"]
    return {
        "data": path.name, "users": data.n_users, "items": data.n_items, "k": k, "trade_off": settings.train.trade_off,
        "epochs_run": trainer.state.epoch, "best_epoch": trainer.state.best_epoch, "stopped": trainer.stopped(),
        "valid_ndcg20": round(trainer.state.best_metric, 5), "valid_intents": valid.to_dict(),
        "test_ndcg5": round(test_metrics["NDCG@5"], 5), "test_intents": test.to_dict(),
        "settled": (trainer.settling or {}).get("kept"), "seconds": round(time.perf_counter() - began, 1),
    }


# "Without hurting validation NDCG": a K whose validation NDCG@20 is within this share of the best K's on the same
# data qualifies (the runs are capped in epochs, so smaller gaps are within what the cap and the seed move).
NDCG_TOLERANCE = 0.05


def pick(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Of one data set's runs, the K kept: validation effective number >= K/2 and NDCG@20 within NDCG_TOLERANCE of
    the best, then the highest validation lift@100."""
    best = max(r["valid_ndcg20"] for r in rows)
    fit = [r for r in rows if r["valid_intents"]["effective"] >= r["k"] / 2
           and r["valid_ndcg20"] >= (1 - NDCG_TOLERANCE) * best and r["valid_intents"]["lift"] is not None]
    return max(fit, key=lambda r: r["valid_intents"]["lift"]) if fit else None


def table(results: list[Path]) -> str:
    """The markdown table of docs/research/INTENTS-NOTES.md from measure's JSON files, the K kept per data set marked, and each
    kept K's users per intent beside the K training/intent_count.py's rule gives."""
    lines = ["| data | users | K | epochs (best) | valid NDCG@20 | valid effective / largest / overlap / lift@100 "
             "| test NDCG@5 | test lift@100 |", "|---|---:|---:|---|---:|---|---:|---:|"]
    kept = []
    for path in results:
        rows = json.loads(path.read_text())["runs"]
        for name in dict.fromkeys(r["data"] for r in rows):
            runs = sorted((r for r in rows if r["data"] == name), key=lambda r: r["k"])
            chosen = pick(runs)
            for r in runs:
                v, mark = r["valid_intents"], "**" if r is chosen else ""
                lines.append(
                    f"| {name} | {r['users']} | {mark}{r['k']}{mark} | {r['epochs_run']} ({r['best_epoch']}) "
                    f"| {r['valid_ndcg20']:.4f} | {v['effective']:.1f} / {v['largest']:.1%} / {v['overlap']} / "
                    f"{mark}{v['lift']:.2f}{mark} | {r['test_ndcg5']:.4f} | {r['test_intents']['lift']:.2f} |")
            if chosen is not None:
                kept.append(f"{name}: K = {chosen['k']}, {chosen['users'] / chosen['k']:.0f} users an intent "
                            f"(the rule: {intents_for(chosen['users'])})")
    return "\n".join(lines) + "\n\nKept: " + "; ".join(kept) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cut = sub.add_parser("subsample", help="a random subset of the users, items renumbered")
    cut.add_argument("--data", type=Path, required=True)
    cut.add_argument("--users", type=int, required=True)
    cut.add_argument("--seed", type=int, default=1)
    cut.add_argument("--out", type=Path, required=True)
    csv = sub.add_parser("from-csv", help="a user,item,...,timestamp CSV as a sequence file")
    csv.add_argument("--csv", type=Path, required=True)
    csv.add_argument("--out", type=Path, required=True)
    show = sub.add_parser("table", help="the markdown table of measure's results, the K kept per data set marked")
    show.add_argument("results", type=Path, nargs="+")
    run = sub.add_parser("measure", help="train each file at each K with the default settings")
    run.add_argument("--data", type=Path, nargs="+", required=True)
    run.add_argument("--ks", type=lambda v: [int(x) for x in v.split(",")], required=True)
    run.add_argument("--epochs", type=int, default=30)
    run.add_argument("--patience", type=int, default=5)
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--trade-off", type=float, help="weight of the intent loss (default: a default run's)")
    run.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "table":
        print(table(args.results), end="")
        return
    if args.command == "from-csv":
        write_interactions(from_csv(args.csv), args.out)
        return
    if args.command == "subsample":
        write_interactions(subsample(read_interactions(args.data), args.users, args.seed), args.out)
        return
    rows: list[dict[str, Any]] = json.loads(args.out.read_text())["runs"] if args.out and args.out.exists() else []
    for path in args.data:
        data = read_interactions(path)
        for k in args.ks:
            if any(r["data"] == path.name and r["k"] == k for r in rows):
                continue
            row = measure_one(path, data, k, args.epochs, args.patience, args.seed, args.trade_off)
            rows.append(row)
            v = row["valid_intents"]
            print(f"{path.name} ({data.n_users} users) K {k}: valid NDCG@20 {row['valid_ndcg20']:.4f}, effective "
                  f"{v['effective']:.1f}, largest {v['largest']:.3f}, overlap {v['overlap']}, lift {v['lift']}, "
                  f"epochs {row['epochs_run']} (best {row['best_epoch']}), {row['seconds']:.0f}s", flush=True)
            write_json({"settings": {"epochs": args.epochs, "patience": args.patience, "seed": args.seed,
                                     "trade_off": args.trade_off},
                        "runs": rows}, args.out)


if __name__ == "__main__":
    main()
