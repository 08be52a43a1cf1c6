"""The intents of a run still training, read as export would read them: its best weights so far (from the run's
checkpoint), the learned centers with their calibration, and settled as the run will settle them at its end (it
keeps them where at least as good on these same users), against a k-means fitted on the same states, on the
validation users (the test split stays for the finished model).

    python -m bench.intent_checkpoint --run STORE/runs/NAME --data FILE [--out FILE.json]

For long runs: whether a change to intent training closes the gap to k-means shows before the run ends.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench import write_json
from bench.intent_calibration import intent_inputs, reading
from elcrec.training import intent_health as ih
from elcrec.training.config import SETTLE_EPOCHS
from elcrec.training.intent_settle import settle_centers
from elcrec.training.trainer import CHECKPOINT, RunCheckpoint, read_checkpoint


def readings(run: RunCheckpoint, data: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """The validation users' count and each way of reading their intents."""
    model = run.model()  # the best weights so far: what export would take
    got = intent_inputs(model, data, "valid")
    valid, nxt, train, centers, items = got.states, got.nxt, got.train, got.centers, got.items
    fitted = ih.fitted_centers(model, got.data, centers.shape[0])
    rows = {
        "learned, calibrated": reading(valid, ih.calibrate(train, centers, balance=True), items, nxt),
        "k-means (intents fit)": reading(valid, ih.calibrate(train, fitted, balance=False), items, nxt),
        "k-means + bias": reading(valid, ih.calibrate(train, fitted, balance=True), items, nxt),
    }
    cfg = run.train_config
    if cfg.intent_loss == "balanced":  # what training will end with
        settled = settle_centers(train, centers, cfg.intent_settle or SETTLE_EPOCHS, cfg.intent_temperature,
                                 seed=cfg.seed)
        rows["learned, settled"] = reading(valid, ih.calibrate(train, settled, balance=True), items, nxt)
    return len(valid), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help=f"a run directory (holds {CHECKPOINT})")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    try:
        run = read_checkpoint(args.run)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    users, rows = readings(run, args.data)
    state = run.state
    print(f"epoch {state.epoch}, best {state.best_epoch} (valid NDCG@20 {state.best_metric:.4f})")
    for name, r in rows.items():
        print(f"{name:<22} effective {r['effective']:6.1f}  largest {r['largest']:.4f}  overlap {r['overlap']:.4f}  "
              f"lift@100 {r['lift']:.2f}")
    write_json({"run": str(args.run), "epoch": state.epoch, "best_epoch": state.best_epoch,
                "users": users, "readings": rows}, args.out)


if __name__ == "__main__":
    main()
