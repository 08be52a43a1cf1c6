"""What settling balanced-trained centers gives (training/intent_settle.py), and what it owes to the centers learned
with the encoder: one version, test users, intent health as everywhere, every reading calibrated as export does.

    python -m bench.intent_settle --store STORE/vNNNN --data FILE [--epochs 30,100] [--batches 256,4096]
        [--out docs/bench/intent-settle-X.json]

Rows: the centers as trained; settled for each number of epochs and batch size; settled the same way from K of
the training states drawn at random instead of the learned centers (the learned centers' share of the result);
the k-means of `elcrec intents fit` on the same states. Only the centers change; the encoder is the version's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench import write_json
from bench.intent_calibration import intent_inputs, reading
from elcrec.model.artifact import ArtifactError, load_artifact
from elcrec.training import intent_health as ih
from elcrec.training.intent_settle import SETTLE_BATCH, settle_centers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="a store (its CURRENT version) or a version")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--epochs", type=lambda v: [int(x) for x in v.split(",")], default=[30, 100])
    parser.add_argument("--batches", type=lambda v: [int(x) for x in v.split(",")], default=[SETTLE_BATCH])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    try:
        art = load_artifact(args.store)
    except ArtifactError as exc:
        parser.error(str(exc))
    model = art.model.eval()
    got = intent_inputs(model, args.data, "test")
    k, temperature = got.centers.shape[0], art.info.intent_temperature

    def read(centers: torch.Tensor) -> dict[str, object]:
        return reading(got.states, ih.calibrate(got.train, centers, balance=True), got.items, got.nxt)

    def settled(start: torch.Tensor, epochs: int, batch: int) -> dict[str, object]:
        began = time.perf_counter()
        row = read(settle_centers(got.train, start, epochs, temperature, args.seed, batch_size=batch))
        return {**row, "seconds": round(time.perf_counter() - began, 1)}

    drawn = got.train[torch.randperm(len(got.train), generator=torch.Generator().manual_seed(args.seed))[:k]]
    rows: dict[str, dict[str, object]] = {"as trained": read(got.centers)}
    for batch in args.batches:
        for epochs in args.epochs:
            rows[f"settled {epochs} epochs, batch {batch}"] = settled(got.centers, epochs, batch)
    rows[f"settled {max(args.epochs)} epochs from random states"] = settled(drawn, max(args.epochs), max(args.batches))
    rows["k-means (intents fit)"] = reading(
        got.states, ih.calibrate(got.train, ih.fitted_centers(model, got.data, k), balance=False), got.items, got.nxt)
    for name, r in rows.items():
        print(f"{name:<40} effective {r['effective']:6.1f}  largest {r['largest']:.4f}  overlap {r['overlap']:.4f}  "
              f"lift@100 {r['lift']:.2f}" + (f"  {r['seconds']}s" if "seconds" in r else ""))
    write_json({"store": str(args.store), "version": art.version, "k": k, "test_users": len(got.states),
                "temperature": temperature, "readings": rows}, args.out)


if __name__ == "__main__":
    main()
