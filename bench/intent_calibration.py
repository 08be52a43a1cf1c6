"""Where learned intents lose to a k-means fitted after training: in how users are assigned, or in how an intent is
described? Measured on one version, test users, intent health as everywhere (training/intent_health.py).

    python -m bench.intent_calibration --store STORE --data FILE [--out docs/bench/intent-calibration-X.json]

Four readings of the same centers (training/intent_health.py calibrate, fitted on the training users), and the
k-means of `elcrec intents fit` on the same states read two ways:
- nearest: each user in the nearest center, items by the center (the centers as trained, uncalibrated);
- balanced: a per-center bias added to the cosines, fitted on the training users so that each center receives
  about 1/K of them (the equipartition the balanced loss trains for, applied at assignment);
- members: items by the center's profile, the normalised mean state of the training users it holds (its
  members), not by the center itself: what sets the intent's users apart;
- balanced + members: both (what export stores for balanced-trained centers);
- k-means, and k-means with the bias and profiles too: the same readings of the fitted centers, to compare alike;
- with --strengths: both sets of centers with a fraction of their bias (and the profiles of the users each then
  holds): how much lift a fuller spread costs each, to compare them at the same effective number.
Nothing is trained; the encoder and the centers are the version's own.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench import write_json
from elcrec.model.artifact import load_artifact
from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace
from elcrec.training import intent_health as ih
from elcrec.training.data import Interactions, eval_split, read_interactions
from elcrec.training.evaluate import pooled_states


def reading(test: torch.Tensor, intents: IntentSpace, items: torch.Tensor, nxt: torch.Tensor) -> dict[str, Any]:
    h = ih.health(test, intents, items, nxt)
    return {"used": h.used, "largest": round(h.largest, 4), "effective": round(h.effective, 1),
            "overlap": round(h.overlap or 0.0, 4), "lift": round(h.lift or 0.0, 2)}


@dataclass(frozen=True)
class IntentInputs:
    """What reading a model's intents needs, on one split: its users' normalised states and next items (0-based
    columns), the training users' states (where calibrations and k-means are fitted), centers, item embeddings."""

    data: Interactions
    states: torch.Tensor
    nxt: torch.Tensor
    train: torch.Tensor
    centers: torch.Tensor
    items: torch.Tensor


def intent_inputs(model: ELCRec, data_file: Path, split: str) -> IntentInputs:
    data = read_interactions(data_file, n_items=model.cfg.n_items)
    ev = eval_split(data, model.cfg.max_len, split)
    return IntentInputs(
        data=data,
        states=F.normalize(pooled_states(model, ev.inputs).float(), dim=-1),
        nxt=torch.from_numpy(np.asarray(ev.targets) - 1),
        train=ih.training_states(model, data),
        centers=model.intent_centers.detach().float(),
        items=model.item_table().detach().float()[1:-1],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="a store (its CURRENT version) or a version")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--strengths", type=lambda v: [float(x) for x in v.split(",")], default=[],
                        help="fractions of the balancing bias to read as well, e.g. 0.25,0.5,0.75")
    args = parser.parse_args()
    art = load_artifact(args.store)
    model = art.model.eval()
    got = intent_inputs(model, args.data, "test")
    test, nxt, train, centers, items = got.states, got.nxt, got.train, got.centers, got.items
    balanced = ih.calibrate(train, centers, balance=True)
    plain = ih.calibrate(train, centers, balance=False)
    fitted = ih.fitted_centers(model, got.data, centers.shape[0])
    rows = {
        "nearest": reading(test, IntentSpace(centers), items, nxt),
        "balanced": reading(test, IntentSpace(centers, balanced.bias), items, nxt),
        "members": reading(test, plain, items, nxt),
        "balanced + members": reading(test, balanced, items, nxt),
        "as stored": reading(test, art.intents.to("cpu"), items, nxt),
        "k-means (intents fit)": reading(test, ih.calibrate(train, fitted, balance=False), items, nxt),
        "k-means + bias": reading(test, ih.calibrate(train, fitted, balance=True), items, nxt),
    }
    for strength in args.strengths:
        rows[f"balanced x{strength} + members"] = reading(test, ih.calibrate(train, centers, True, strength), items, nxt)
        rows[f"k-means + bias x{strength}"] = reading(test, ih.calibrate(train, fitted, True, strength), items, nxt)
    k = centers.shape[0]
    for name, r in rows.items():
        print(f"{name:<22} used {r['used']:>4}  largest {r['largest']:.4f}  effective {r['effective']:6.1f}  "
              f"overlap {r['overlap']:.4f}  lift@100 {r['lift']:.2f}")
    write_json({"store": str(args.store), "version": art.version, "k": k, "test_users": len(test), "readings": rows},
               args.out)


if __name__ == "__main__":
    main()
