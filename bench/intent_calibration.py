"""Where learned intents lose to a k-means fitted after training: in how users are assigned, or in how an intent is
described? Measured on one version, test users, intent health as everywhere (training/intent_health.py).

    python -m bench.intent_calibration --store STORE --data FILE [--out docs/bench/intent-calibration-X.json]

Four readings of the same learned centers, and the k-means of `elcrec intents fit` on the same states:
- nearest: each user in the nearest center, items by the center (what the manifest reports);
- balanced: a per-center bias added to the cosines, fitted on the training users so that each center receives
  about 1/K of them (the equipartition the balanced loss trains for, applied at assignment);
- members: items by the normalised mean state of the training users the center holds (its members), not by the
  center itself: what sets the intent's users apart;
- balanced + members: both.
Nothing is trained; the encoder and the centers are the version's own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model.artifact import load_artifact
from model.intents import characteristic_scores
from training import intent_health as ih
from training.data import eval_split, left_pad, read_interactions
from training.evaluate import pooled_states


def balancing_bias(sim: torch.Tensor, steps: int = 200, rate: float = 0.01) -> torch.Tensor:
    """(K,) bias such that argmax(sim + bias) spreads the rows of sim (U, K) about evenly over the K columns."""
    k = sim.shape[1]
    bias = torch.zeros(k)
    for _ in range(steps):
        share = ih.shares((sim + bias).argmax(1), k).clamp_min(1e-6)
        bias -= rate * torch.log(share * k)
    return bias


def member_centroids(states: torch.Tensor, assigned: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Each center's members' normalised mean state (the center itself where it holds nobody)."""
    sums = torch.zeros_like(centers).index_add_(0, assigned, states)
    return F.normalize(torch.where(sums.norm(dim=1, keepdim=True) > 0, sums, centers), dim=-1)


def reading(test: torch.Tensor, centers: torch.Tensor, bias: torch.Tensor, described: torch.Tensor,
            items: torch.Tensor, nxt: torch.Tensor) -> dict[str, Any]:
    assigned = (test @ centers.T + bias).argmax(1)
    s = ih.shares(assigned, centers.shape[0])
    scores = characteristic_scores(described, test.mean(0), items)
    n = items.shape[0]
    return {"used": int((s > 0).sum()), "largest": round(float(s.max()), 4),
            "effective": round(ih.effective_number(s), 1),
            "overlap": round(ih.overlap(ih.top_items(scores, ih.OVERLAP_TOP), s, n) or 0.0, 4),
            "lift": round(ih.lift(ih.top_items(scores, ih.LIFT_TOP), assigned, nxt, s, n) or 0.0, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="a store (its CURRENT version) or a version")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    art = load_artifact(args.store)
    model = art.model.eval()
    data = read_interactions(args.data, n_items=model.cfg.n_items)
    ev = eval_split(data, model.cfg.max_len, "test")
    test = F.normalize(pooled_states(model, ev.inputs).float(), dim=-1)
    seqs = [data.sequence(u)[:-2] for u in range(data.n_users)]
    train = F.normalize(pooled_states(model, left_pad([s for s in seqs if len(s)], model.cfg.max_len)).float(), dim=-1)
    centers = F.normalize(model.intent_centers.detach().float(), dim=-1)
    items = model.item_table().detach().float()[1:-1]
    nxt = torch.from_numpy(np.asarray(ev.targets) - 1)
    k = centers.shape[0]
    zero = torch.zeros(k)
    bias = balancing_bias(train @ centers.T)
    rows = {
        "nearest": reading(test, centers, zero, centers, items, nxt),
        "balanced": reading(test, centers, bias, centers, items, nxt),
        "members": reading(test, centers, zero, member_centroids(train, (train @ centers.T).argmax(1), centers),
                           items, nxt),
        "balanced + members": reading(
            test, centers, bias, member_centroids(train, (train @ centers.T + bias).argmax(1), centers), items, nxt),
    }
    fitted = ih.fitted_centers(model, data, k)
    rows["k-means (intents fit)"] = reading(test, fitted, zero, fitted, items, nxt)
    for name, r in rows.items():
        print(f"{name:<22} used {r['used']:>4}  largest {r['largest']:.4f}  effective {r['effective']:6.1f}  "
              f"overlap {r['overlap']:.4f}  lift@100 {r['lift']:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"store": str(args.store), "version": art.version, "k": k,
                                        "test_users": len(test), "readings": rows}, indent=2))


if __name__ == "__main__":
    main()
