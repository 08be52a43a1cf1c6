"""Train and evaluate every benchmark file with its preset; write docs/results.json and docs/RESULTS.md.

    python -m bench.results [--data-dir ../shared/data] [--sets Beauty Toys_and_Games] [--seeds 1 2 3]
                            [--variant NAME] [--store-root runs/results] [--table-only]
                            [--jobs N] [--epochs N] [--docs DIR]

NAME is one of the keys of VARIANTS below (`--help` lists them).

Each (data set, variant, seed) trains through `elcrec train` into its own store; an interrupted run is
resumed by running the same command again. Results already present are not retrained. `--jobs N` trains N runs at
once: on a GPU, several runs share the card (nine at once took 12-22 s an epoch each on an H100, against about
120 s for one on one CPU core); on a CPU, give each its own core (`OMP_NUM_THREADS=1`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from elcrec.model.artifact import Store

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("ELCREC_SHARED", ROOT.parent / "shared")) / "data"
SETS = ["Beauty", "Sports_and_Outdoors", "Toys_and_Games", "Yelp"]
DOCS = ROOT / "docs"  # results.json, RESULTS.md and the epoch logs (logs/)

# ELCREC.md section 8: (H@5, N@5, H@20, N@20) on test, reference protocol.
PAPER = {
    "Beauty": (0.0529, 0.0355, 0.1079, 0.0509),
    "Sports_and_Outdoors": (0.0286, 0.0185, 0.0648, 0.0286),
    "Toys_and_Games": (0.0585, 0.0403, 0.1138, 0.0560),
    "Yelp": (0.0236, 0.0150, 0.0653, 0.0266),
}
VARIANTS: dict[str, list[str]] = {
    "faithful": [],
    # The exact algorithm of ELCREC.md: pooling over all T positions, flattened instance loss (slow).
    "reference": ["--pooling", "all"],
    # The best ranking found per data set (training.config.IMPROVED) with ELCM's intents, as its rows were trained:
    # on Beauty, Toys and Yelp the preset now learns its intents balanced, which is the *balanced* variant there. The
    # other variants on top of --improved name ELCM for the same reason.
    "improved": ["--improved", "--intent-loss", "elcm"],
    # Better ranking with the users spread over many intents: training.config.IMPROVED_INTENTS, a softmax over 1024
    # shared negatives (and ELCM weight 1 on Beauty). Named *improved* until the filter became the improved preset.
    "intents": ["--improved-intents"],
    # The paper's preset with the sampled softmax alone: "intents" on Sports and Toys; on Beauty intents also
    # lowers the ELCM weight, on Yelp intents is the paper's preset.
    "sampled": ["--rec-loss", "sampled", "--negatives", "1024"],
    # The intents preset trained on one row per prefix, each target predicted from the sequence's end
    # (`--samples prefixes`). An epoch holds several times more rows and steps, and validation creeps up: patience 5.
    "prefixes": ["--improved-intents", "--samples", "prefixes", "--patience", "5"],
    # Prefixes with the full softmax over all items and BSARec's frequency filter mixed into each block's
    # self-attention (`--mix-alpha 0.7`, the 3 lowest DFT bins kept): the improved preset without the moving average
    # of the weights and at hidden size 64. Its runs were started as `--improved-intents --samples prefixes
    # --rec-loss softmax --mix-alpha 0.7 --patience 10`, which resolves to the same settings (the same run names).
    "filter": ["--improved", "--hidden", "64", "--ema", "0", "--label-smoothing", "0", "--intent-loss", "elcm"],
    # Beyond the paper, full softmax over all items (the later work's loss) on sequence samples.
    "softmax": ["--rec-loss", "softmax"],
    # The filter with the moving average: the improved preset at hidden size 64 and without label smoothing where it
    # sets 128 and 0.1 (Beauty); elsewhere the same as improved.
    "average": ["--improved", "--hidden", "64", "--label-smoothing", "0", "--intent-loss", "elcm"],
    # The average settings with BSARec's Beauty architecture and step (2 blocks, 1 head, lr 5e-4) and without the
    # instance contrastive loss; the intent losses stay. Measured on Beauty only.
    "bsa": ["--improved", "--hidden", "64", "--layers", "2", "--heads", "1", "--lr", "5e-4", "--cf-weight", "0",
            "--label-smoothing", "0", "--intent-loss", "elcm"],
    # The improved preset without label smoothing, which it sets on Beauty only (elsewhere the same as improved):
    # the Beauty row of *improved* until smoothing was measured better.
    "unsmoothed": ["--improved", "--label-smoothing", "0", "--intent-loss", "elcm"],
    # The improved preset with intents learned under balanced assignments (`--intent-loss balanced`, training/losses.py
    # balanced_clustering) instead of ELCM: the users spread over the intents.
    "balanced": ["--improved", "--intent-loss", "balanced"],
    # The same with 15 earlier batches' states (3840 rows, SwAV's setting) in each batch's balanced assignment: a batch
    # of 256 rows no longer has to spread itself over K >= 256 centers alone.
    "queue": ["--improved", "--intent-loss", "balanced", "--intent-queue", "3840"],
}


def train_command(data: Path, name: str, variant: str, seed: int, store: Path, epochs: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "elcrec", "train", "--data", str(data), "--out", str(store), "--preset", name,
           "--seed", str(seed), "--no-progress", *VARIANTS[variant]]
    return cmd + ["--epochs", str(epochs)] if epochs else cmd


def train(cmd: list[str], output: Path | None = None) -> bool:
    """Run one `elcrec train`; its output goes to the terminal, or to `output` when several run at once."""
    print("$", " ".join(cmd), flush=True)
    if output is None:
        return subprocess.run(cmd, cwd=ROOT).returncode == 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "a") as fh:
        ok = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT).returncode == 0
    if not ok:
        tail = output.read_text().splitlines()[-5:]
        print(f"failed (its output: {output}):", *tail, sep="\n  ", flush=True)
    return ok


def collect(name: str, variant: str, seed: int, store: Path, logs: Path) -> dict[str, Any] | None:
    """The finished run in `store` as a row of results.json (None if it has not finished); copies its epoch log."""
    done = Store(store).run_files(Store.RUN_RESULT)
    if not done:
        return None
    result = json.loads(done[-1].read_text())
    # How the users spread over the intents (all users' whole histories, from the version's manifest): of the
    # trained version, or of its latest calibration (`elcrec intents calibrate`, the same encoder) where the trained
    # version was exported before calibrations, or settling (`--settle`), existed.
    version = calibrated(store, result["version"])
    info = Store(store).manifest(version).info if version in Store(store).versions() else None
    shares = info.intent_shares if info is not None else None
    intents = {"used": sum(x > 0 for x in shares), "of": len(shares), "largest": max(shares)} if shares else None
    health = info.intent_health if info is not None else None  # on the test users; absent before it existed
    # The epoch log beside the results (committed; the run directory with its checkpoints is not).
    log = logs / f"{name}-{variant}-seed{seed}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(done[-1].parent / Store.RUN_LOG, log)
    return {"data": name, "variant": variant, "seed": seed, "epochs_run": result["epochs_run"],
            "best_epoch": result["best_epoch"], "stopped": result.get("stopped"),  # None: recorded before the field
            "train_seconds": result["train_seconds"],
            "metrics": result["metrics"], "intents": intents, "intent_health": health, "intents_version": version,
            "device": result.get("device", "cpu"),
            "log": str(log.relative_to(ROOT)) if log.is_relative_to(ROOT) else str(log)}


def calibrated(store: Path, version: str) -> str:
    """The last version of `store` that calibrates `version` again (origin kind "calibrated"), else `version`;
    a calibration of such a calibration counts too (the same weights, calibrated by later code)."""
    found = version
    for name in Store(store).versions():
        origin = Store(store).manifest(name).info.origin
        if origin.get("kind") == "calibrated" and origin.get("parent") == found:
            found = name
    return found


def gpu_mark(run: dict[str, Any]) -> str:
    device = run.get("device", "cpu")
    if device == "cpu":
        return ""
    return " GPU" if device.startswith("cuda") else " cpu+GPU"


def gpu_line(results: list[dict[str, Any]]) -> str:
    gpus = sorted({m for r in results for m in re.findall(r"cuda\S* \(([^)]+)\)", r.get("device", "cpu"))})
    if not gpus:
        return ""
    return (f" Runs marked GPU in the train time column trained on {' / '.join(gpus)}; *cpu+GPU*: resumed there"
            " after epochs on the CPU (each run's `device` in results.json).")


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(results: list[dict[str, Any]], machine: str) -> str:
    keys = ["HIT@5", "NDCG@5", "HIT@20", "NDCG@20"]
    lines = [
        "# Results",
        "",
        "Test split, full ranking. Produced by `python -m bench.results` (rerun it to reproduce; finished runs are",
        "reused, interrupted ones resume). Paper numbers: ELCREC.md section 8 (reference protocol).",
        f"Machine: {machine}." + gpu_line(results),
        "",
        "| data set | model | seeds | epochs (best) | HIT@5 | NDCG@5 | HIT@20 | NDCG@20 | strict NDCG@5 / @20 | intents used (largest share) | intents effective / overlap / lift@100 | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SETS:
        h5, n5, h20, n20 = PAPER[name]
        lines.append(f"| {name} | ELCRec (paper) | - | - | {h5:.4f} | {n5:.4f} | {h20:.4f} | {n20:.4f} | - | - | - | - |")
        for variant in VARIANTS:
            runs = [r for r in results if r["data"] == name and r["variant"] == variant]
            if not runs:
                continue
            cells = [fmt([r["metrics"]["test"]["reference"][k] for r in runs]) for k in keys]
            strict = [fmt([r["metrics"]["test"]["strict"][k] for r in runs]) for k in ("NDCG@5", "NDCG@20")]
            seeds = ",".join(str(r["seed"]) for r in runs)
            epochs = ", ".join(f"{r['epochs_run']}{'*' if r.get('stopped') == 'epochs' else ''} ({r['best_epoch']})"
                               for r in runs)
            intents = ", ".join(
                f"{i['used']}/{i['of']} ({i['largest']:.0%})" if (i := r.get("intents")) else "-" for r in runs
            )
            health = ", ".join(
                f"{h['effective']:.0f} / {h['overlap']:.3f} / {h['lift']:.1f}"
                if (h := r.get("intent_health")) and h.get("overlap") is not None and h.get("lift") is not None
                else "-" for r in runs
            )
            minutes = " / ".join(f"{r['train_seconds'] / 60:.0f} min" + gpu_mark(r) for r in runs)
            lines.append(f"| {name} | ours, {variant} | {seeds} | {epochs} | " + " | ".join(cells)
                         + f" | {' / '.join(strict)} | {intents} | {health} | {minutes} |")
    lines += [
        "",
        "- *Epochs (best)*: epochs trained and the one kept (best validation NDCG@20); a star marks a run stopped by",
        "  its epoch cap (`--epochs`) before its patience ran out, whose validation may still have been rising.",
        "- Main columns: the reference protocol (seen items scored 0, as the authors' code and the paper); *strict*:",
        "  seen items, padding and mask rows at minus infinity. Mean ± standard deviation over seeds.",
        "- *Intents used*: how many of the K intents hold at least one user (each user's whole history, its intent),",
        "  and the share of users in the largest one. *Intents effective / overlap / lift@100*: the health",
        "  of the intents on the test users (training/intent_health.py, `elcrec evaluate --json`): exp of the entropy",
        "  of the users' shares, the share-weighted Jaccard overlap of the intents' top-20 characteristic items, and",
        "  how much more often a user's next item is among the 100 characteristic items of the own intent than of an",
        "  intent drawn by share; \"-\" for runs exported before it was recorded. Both read the intents with the",
        "  version's intent calibration (docs/INTENTS.md: profiles, and a balancing bias for centers trained",
        "  balanced) where it has one. The *balanced* runs, trained before training settled its centers, are read",
        "  settled and calibrated (`elcrec intents calibrate STORE --data FILE --settle 100`, docs/INTENTS.md).",
        "- *balanced*: the improved preset with the intents learned under balanced assignments and settled after",
        "  training (`--improved --intent-loss balanced`) instead of ELCM, what `--improved` itself trains on Beauty,",
        "  Toys and Yelp now; the *improved* rows are ELCM's (`--intent-loss elcm`). *queue*: balanced with a queue of 3840",
        "  earlier states in each batch's balanced assignment (`--intent-queue 3840`).",
        "- *faithful*: the paper's preset (ELCREC.md section 6, one sampled negative, BCE) trained in the default fast",
        "  mode (`--pooling real`, see the README); *reference*: the same in the exact reference mode",
        "  (`--pooling all`).",
        "- *improved*: the best ranking found for the data set (`--improved`, training/config.py `IMPROVED`): the",
        "  *filter* settings below with a moving average of the weights (decay 0.999 a step, `--ema 0.999`), which",
        "  each epoch validates and the run exports, the *filter* runs being the same seeds without it (none on",
        "  Yelp); on Beauty at hidden size 128 (`--hidden 128`) with the softmax's targets smoothed by 0.1",
        "  (`--label-smoothing 0.1`), *unsmoothed* being the same without smoothing and *average* without both",
        "  (hidden size 64). A run whose settings two names share is trained once and listed under both.",
        "- *intents*: better ranking than the paper with the users spread over many intents (`--improved-intents`,",
        "  `IMPROVED_INTENTS`): the next-item loss a softmax over 1024 negatives shared by the batch, and on Beauty the",
        "  ELCM weight 1 instead of 10; on Yelp, where that loss scored lower, the paper's preset.",
        "- *sampled*: the paper's preset with that next-item loss alone (`--rec-loss sampled --negatives 1024`; the",
        "  same as *intents* on Sports and Toys); *softmax*: the preset with a full softmax over all items",
        "  (`--rec-loss softmax`); *prefixes*: the intents preset trained on one row per prefix of each user's",
        "  training items, its next item the only target, predicted from the sequence's end as at serving time",
        "  (`--improved-intents --samples prefixes`, patience 5); *filter*: prefixes with the full softmax over all",
        "  items and BSARec's frequency filter mixed into each block's self-attention at weight 0.7, patience 10",
        "  (`--improved --hidden 64 --ema 0 --label-smoothing 0`, the improved settings without the average); *bsa*:",
        "  the *average* settings with BSARec's Beauty architecture and learning rate (2 blocks, 1 head, lr 5e-4) and",
        "  without the instance contrastive loss (`--improved --hidden 64 --layers 2 --heads 1 --lr 5e-4",
        "  --cf-weight 0 --label-smoothing 0`).",
        "- Intent losses are kept in every variant.",
        "- Reruns: a run is deterministic for a seed on the CPU with a fixed thread count, not across devices. The",
        "  *filter* runs applied the frequency filter through two FFTs;",
        "  since commit 7a9788d it is one matrix product, the same function up to float32 rounding, so a rerun of",
        "  those lands within the spread between seeds rather than on the same digits.",
        "- Spread over users: each test mean is over one draw of users. `elcrec evaluate STORE --data FILE` prints",
        "  every metric with its standard error over the split's users; for the Beauty *filter* model of seed 1 it is",
        "  0.0013 on NDCG@5 (0.0505), as large as many differences in this table.",
        "- Train time is wall time: on the shared 2-core machine, which ran other jobs at the same time, or on the",
        "  GPU, which trained up to nine runs at once.",
    ]
    lines += ["", "Pictures (`elcrec report STORE --data FILE --out DIR`: training curves, a t-SNE map of users coloured by",
              "intent, intent sizes) of two Beauty models of seed 1: *faithful* ([report/Beauty/](report/Beauty/index.html))",
              "and *improved* ([report/Beauty-improved/](report/Beauty-improved/index.html)).", ""]
    lines += ["Per-epoch logs (losses, validation metrics, seconds): [logs/](logs/), named",
              "`<data set>-<variant>-seed<seed>.jsonl`; the `log` field of each run in [results.json](results.json).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sets", nargs="+", default=SETS, choices=SETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--variant", choices=list(VARIANTS), default="faithful")
    parser.add_argument("--store-root", type=Path, default=ROOT / "runs" / "results")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where results.json, RESULTS.md and logs/ go")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once (on a GPU several share the card; each one's output goes to "
                             "STORE_ROOT/<run>.out)")
    parser.add_argument("--epochs", type=int, default=None, help="stop each run after this many epochs (a smoke run)")
    parser.add_argument("--table-only", action="store_true", help="collect finished runs and rewrite the table; train nothing")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    variants = list(VARIANTS) if args.table_only else [args.variant]
    runs = [(name, variant, seed) for name in args.sets for variant in variants for seed in args.seeds]
    mine: dict[tuple[str, str, int], dict[str, Any]] = {}

    def store(run: tuple[str, str, int]) -> Path:
        return args.store_root / f"{run[0]}-{run[1]}-seed{run[2]}"

    def finish(run: tuple[str, str, int]) -> None:
        got = collect(*run, store(run), args.docs / "logs")
        if got is not None:
            mine[run] = got
            write(mine, args.docs)

    if args.table_only:
        for run in runs:
            finish(run)
        write(mine, args.docs)
        return
    for name in args.sets:
        if not (args.data_dir / f"{name}.txt").exists():
            sys.exit(f"{args.data_dir / f'{name}.txt'} is absent: pass --data-dir or set ELCREC_SHARED")
    todo = [run for run in runs if not Store(store(run)).run_files(Store.RUN_RESULT)]
    commands = {run: train_command(args.data_dir / f"{run[0]}.txt", *run, store(run), args.epochs) for run in todo}
    for run in runs:  # finished ones first: the table holds them whatever happens to the rest
        if run not in commands:
            finish(run)
    if args.jobs == 1:
        for run, cmd in commands.items():
            if train(cmd):
                finish(run)
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(train, cmd, store(run).with_suffix(".out")): run for run, cmd in commands.items()}
            for future in as_completed(futures):
                if future.result():
                    finish(futures[future])
    write(mine, args.docs)
    failed = [run for run in commands if run not in mine]
    if failed:
        sys.exit("not finished: " + ", ".join(f"{n} {v} seed {s}" for n, v, s in failed))


def write(mine: dict[tuple[str, str, int], dict[str, Any]], docs: Path) -> None:
    """Merge this process's runs into results.json as it is now (other runs may be writing theirs)."""
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads per run as launched"
    results_json = docs / "results.json"
    results_json.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(results_json.read_text())["runs"] if results_json.exists() else []
    results = {(r["data"], r["variant"], r["seed"]): r for r in current} | mine
    ordered = sorted(results.values(), key=lambda r: (SETS.index(r["data"]), r["variant"], r["seed"]))
    tmp = results_json.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"machine": machine, "runs": ordered}, indent=2) + "\n")
    os.replace(tmp, results_json)
    (docs / "RESULTS.md").write_text(table(ordered, machine))


if __name__ == "__main__":
    main()
