"""One's own data with the defaults a new user gets: ranking against the paper's ELCM over seeds, and the intents'
health and category coherence against a k-means fitted on the same encoder.

    python -m bench.own_data --data DIR --catalog FILE --field genre --seeds 1,2,3 --work SCRATCH \
        [--id-column id --title-column title --multi-sep '|' --catalog-field NAME=COLUMN] [--parallel 2] [--epochs N] \
        [--elcm-weights 0.03,0.1] [--out docs/bench/own-data-X.json]

DIR is a data set made by `elcrec data import`. For each seed S, two runs of the real command line:
  - `elcrec train --data DIR --out WORK/default-sS --catalog FILE --seed S`: nothing else, the defaults;
  - `elcrec train --data DIR --out WORK/elcmW-sS --intent-loss elcm --trade-off W --seed S`: the paper's intent loss,
    the rest the same, for each weight W of --elcm-weights (default: the default's, NO_PRESET's, so that the two runs
    differ in the loss alone).
Test NDCG@10 and HIT@10 (reference protocol) come from each version's manifest. For every default model, the readings
of bench.intent_labels on the test users: effective number, overlap, lift@100 and coherence on --field, for the
learned intents and for a k-means of as many intents (`elcrec intents fit`'s) on the same encoder.
A store that already holds a version is read, not trained again, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import write_json
from bench.intent_labels import readings
from elcrec.model.artifact import ArtifactError, load_artifact
from elcrec.model.catalog import read_catalog
from elcrec.training.config import NO_PRESET

METRICS = ("NDCG@10", "HIT@10")
# ELCM at the default's intent-loss weight unless told (`--intent-loss elcm` by itself restores the paper's weight too)
ELCM_WEIGHT = NO_PRESET[1]["trade_off"]


def train(data: Path, store: Path, seed: int, extra: list[str], log: Path) -> None:
    """`elcrec train` into `store` unless it already holds a version; one thread (the runs share the cores)."""
    try:
        load_artifact(store, verify=False)
        return
    except ArtifactError:
        pass
    store.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "elcrec", "train", "--data", str(data), "--out", str(store), "--seed", str(seed), *extra]
    print("$", " ".join(cmd[1:]), flush=True)
    with open(log, "w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:])} failed ({done.returncode}); its output: {log}")


def test_metrics(store: Path) -> dict[str, Any]:
    art = load_artifact(store, verify=False)
    test = (art.info.metrics or {})["test"]["reference"]
    return {"version": art.version, "k": art.config.n_intents, "best_epoch": art.info.origin.get("best_epoch"),
            **{m: test[m] for m in METRICS}}


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 5),
            "sd": round(statistics.stdev(values), 5) if len(values) > 1 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a data set directory made by elcrec data import")
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--id-column", default="id")
    parser.add_argument("--title-column", default="title")
    parser.add_argument("--multi-sep", default="|")
    parser.add_argument("--catalog-field", action="append", default=[],
                        help="a categorical field of the catalog, COLUMN or NAME=COLUMN (elcrec train --field)")
    parser.add_argument("--field", required=True, help="the catalog's categorical field of the coherence")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the stores")
    parser.add_argument("--parallel", type=int, default=2, help="training runs at once (one thread each)")
    parser.add_argument("--epochs", type=int, help="cap every run at this many epochs (default: elcrec train's)")
    parser.add_argument("--elcm-weights", default=f"{ELCM_WEIGHT:g}", help="ELCM's --trade-off values to compare with")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cat_opts = ["--catalog", str(args.catalog), "--id-column", args.id_column, "--title-column", args.title_column,
                "--multi-sep", args.multi_sep, *(opt for f in args.catalog_field for opt in ("--field", f))]
    cap = ["--epochs", str(args.epochs)] if args.epochs else []
    kinds = [("default", cat_opts), *((f"elcm{float(w):g}", ["--intent-loss", "elcm", "--trade-off", f"{float(w):g}"])
                                      for w in args.elcm_weights.split(","))]
    runs = [(kind, seed, args.work / f"{kind}-s{seed}", [*extra, *cap]) for seed in seeds for kind, extra in kinds]
    args.work.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        for job in [pool.submit(train, args.data, store, seed, extra, args.work / f"{kind}-s{seed}.log")
                    for kind, seed, store, extra in runs]:
            job.result()

    catalog = read_catalog(args.catalog, args.id_column, args.title_column, args.multi_sep, args.catalog_field)
    ranking: dict[str, list[dict[str, Any]]] = {kind: [] for kind, _ in kinds}
    intents: list[dict[str, Any]] = []
    for kind, seed, store, _ in runs:
        ranking[kind].append({"seed": seed, **test_metrics(store)})
        if kind == "default":
            got = readings(load_artifact(store), args.data, catalog, args.field, seed=seed)
            intents.append({"seed": seed, **got})
    summary = {kind: {m: spread([r[m] for r in rows]) for m in METRICS} for kind, rows in ranking.items()}
    for name in ("as stored", "k-means (intents fit)"):
        rows = [got["readings"][name] for got in intents]
        summary[name] = {key: spread([float(r[key]) for r in rows]) for key in ("effective", "overlap", "lift")}
        summary[name]["coherence"] = spread([r["coherence"]["ratio"] or 0.0 for r in rows])
        summary[name]["k"] = rows[0]["k"]
    for kind in ranking:
        print(f"{kind:<22} test " + "  ".join(f"{m} {summary[kind][m]['mean']:.4f} ± {summary[kind][m]['sd']:.4f}"
                                              for m in METRICS))
    for name in ("as stored", "k-means (intents fit)"):
        s = summary[name]
        print(f"{name:<22} K {s['k']}  effective {s['effective']['mean']:.1f}  overlap {s['overlap']['mean']:.4f}  "
              f"lift@100 {s['lift']['mean']:.2f}  coherence x{s['coherence']['mean']:.2f} ({args.field})")
    write_json({"data": str(args.data), "catalog": str(args.catalog), "field": args.field, "seeds": seeds,
                "epochs_cap": args.epochs,
                "summary": summary, "ranking": ranking, "intents": intents}, args.out)


if __name__ == "__main__":
    main()
