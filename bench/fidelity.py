"""Side by side, epoch by epoch: the authors' code training (their log), our reference mode (`--pooling all`) and
our fast mode, on the same data set, command and seed. Writes a plot and a table (docs/FIDELITY.md embeds them).

    python -m bench.fidelity --authors ../shared/reference/runs/Beauty-authors-seed1.partial.txt \
        --reference runs/results/Beauty-reference-seed1/runs/<run>/log.jsonl \
        --fast docs/logs/Beauty-faithful-seed1.jsonl --out docs/fidelity/beauty

The authors' log (their `main.py`'s OUT/ELCRec-<data>-1.txt) holds one Python dict a line: the losses of epoch
e (`rec_avg_loss`, `joint_avg_loss`) and then its validation metrics; they count epochs from 0, we count from 1,
so their epoch e is our epoch e + 1. Our logs are the trainer's log.jsonl (one JSON object an epoch).
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

Curve = dict[int, dict[str, float]]  # epoch (ours, from 1) -> {"rec": ..., "ndcg20": ..., "hit20": ...}


def read_authors(path: Path) -> Curve:
    curve: Curve = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue  # the Namespace line, blank lines
        row = ast.literal_eval(line)
        if "epoch" in row and "rec_avg_loss" in row:
            curve.setdefault(int(row["epoch"]) + 1, {})["rec"] = float(row["rec_avg_loss"])
        elif "Epoch" in row and "NDCG@20" in row:
            point = curve.setdefault(int(row["Epoch"]) + 1, {})
            point["ndcg20"] = float(row["NDCG@20"])
            point["hit20"] = float(row["HIT@20"])
    return curve


def read_ours(path: Path) -> Curve:
    curve: Curve = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "epoch" not in row or "valid" not in row:
            continue
        curve[int(row["epoch"])] = {"rec": float(row["rec"]), "ndcg20": float(row["valid"]["NDCG@20"]),
                                    "hit20": float(row["valid"]["HIT@20"])}
    return curve


def table(curves: dict[str, Curve], every: int) -> list[str]:
    names = list(curves)
    last = max(max(c) for c in curves.values() if c)
    epochs = sorted({1, *range(every, last + 1, every), *(max(c) for c in curves.values() if c)})
    head = "| epoch | " + " | ".join(f"{n}: next-item loss | {n}: valid NDCG@20" for n in names) + " |"
    rows = [head, "|---:|" + "---:|---:|" * len(names)]
    for e in epochs:
        cells = []
        for n in names:
            p = curves[n].get(e, {})
            cells += [f"{p['rec']:.4f}" if "rec" in p else "", f"{p['ndcg20']:.4f}" if "ndcg20" in p else ""]
        rows.append(f"| {e} | " + " | ".join(cells) + " |")
    return rows


def plot(curves: dict[str, Curve], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_ndcg) = plt.subplots(1, 2, figsize=(11, 4))
    for name, curve in curves.items():
        ep = sorted(e for e in curve if "rec" in curve[e])
        ax_loss.plot(ep, [curve[e]["rec"] for e in ep], label=name)
        ep = sorted(e for e in curve if "ndcg20" in curve[e])
        ax_ndcg.plot(ep, [curve[e]["ndcg20"] for e in ep], label=name)
    ax_loss.set(xlabel="epoch", ylabel="next-item loss (BCE, one negative)", title="training loss")
    ax_ndcg.set(xlabel="epoch", ylabel="valid NDCG@20", title="validation")
    for ax in (ax_loss, ax_ndcg):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    png = out.with_suffix(".png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def gaps(authors: Curve, reference: Curve) -> dict[str, Any]:
    """Where both have an epoch: the largest differences of the next-item loss and of valid NDCG@20."""
    both = sorted(set(authors) & set(reference))
    rec = [abs(authors[e]["rec"] - reference[e]["rec"]) for e in both if "rec" in authors[e]]
    ndcg = [reference[e]["ndcg20"] - authors[e]["ndcg20"] for e in both if "ndcg20" in authors[e]]
    return {"epochs": len(both), "max_abs_rec_diff": round(max(rec), 4) if rec else None,
            "ndcg20_diff_min": round(min(ndcg), 4) if ndcg else None,
            "ndcg20_diff_max": round(max(ndcg), 4) if ndcg else None,
            "last_common_epoch": both[-1] if both else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--authors", type=Path, required=True, help="their main.py's log (OUT/ELCRec-<data>-1.txt)")
    ap.add_argument("--reference", type=Path, required=True, help="our --pooling all run's log.jsonl")
    ap.add_argument("--fast", type=Path, help="our fast mode's log.jsonl (same preset), optional")
    ap.add_argument("--out", type=Path, required=True, help="path prefix: writes PREFIX.png and PREFIX.json")
    ap.add_argument("--every", type=int, default=10, help="table rows every N epochs")
    ap.add_argument("--title", default="Beauty, the paper's command, seed 1, one CPU core")
    args = ap.parse_args()

    curves = {"authors' code": read_authors(args.authors), "ours, reference mode": read_ours(args.reference)}
    if args.fast:
        curves["ours, fast mode"] = read_ours(args.fast)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = plot(curves, args.out, args.title)
    summary = {"gaps_reference_vs_authors": gaps(curves["authors' code"], curves["ours, reference mode"]),
               "epochs": {k: max(v) if v else 0 for k, v in curves.items()},
               "curves": {k: {str(e): p for e, p in sorted(v.items())} for k, v in curves.items()}}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n".join(table(curves, args.every)))
    print(json.dumps(summary["gaps_reference_vs_authors"]))
    print(f"wrote {png} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
