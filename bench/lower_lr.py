"""Probe: continue a finished model from its exported (best) weights at a lower learning rate.

    python -m bench.lower_lr --store runs/results/Beauty-filter-seed1 --data ../shared/data/Beauty.txt \
        [--lr 1e-4] [--epochs 8]

Trains with the version's own model and training settings except the learning rate (a fresh Adam), validates
after every epoch, and prints the validation and test metrics (reference protocol) of the best epoch, where
epoch 0 is the model as exported. Nothing is written. A probe for whether a learning-rate decay would lift a
plateau; results in docs/research/EXPERIMENTS.md.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from elcrec.model.artifact import load_artifact
from elcrec.training.config import TrainConfig
from elcrec.training.data import read_interactions
from elcrec.training.export import full_metrics
from elcrec.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    art = load_artifact(args.store)
    data = read_interactions(args.data)
    tcfg = TrainConfig(**{**(art.info.train_config or {}), "lr": args.lr})
    trainer = Trainer(art.config, tcfg, data, log=print, progress=False)
    trainer.model.load_state_dict(art.model.state_dict())
    trainer.centers_ready = True  # the exported centers are the trained ones
    start = trainer.validate()
    print("epoch 0 (as exported): valid", json.dumps(start), flush=True)
    trainer.state.best_metric, trainer.best_weights = start["NDCG@20"], copy.deepcopy(trainer.model.state_dict())
    for _ in range(args.epochs):
        print(json.dumps(trainer.run_epoch()), flush=True)
    trainer.model.load_state_dict(trainer.best_weights)
    trainer.model.eval()
    with torch.no_grad():
        metrics = full_metrics(trainer.model, data)
    print(f"best epoch {trainer.state.best_epoch}: valid {json.dumps(metrics['valid']['reference'])} "
          f"test {json.dumps(metrics['test']['reference'])}")


if __name__ == "__main__":
    main()
