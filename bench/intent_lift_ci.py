"""Is a gap in lift@100 between a version's intents and a k-means on the same encoder more than the test users'
sampling? A paired bootstrap over the test users.

    python -m bench.intent_lift_ci --store STORE --data FILE [--seed S] [--k K] [--draws 2000] [--out X.json]

Both readings are bench/intent_labels.py's: the version's intents as stored ("as stored") and the k-means of
`elcrec intents fit` with the same seed, read without a bias. lift@100 is a ratio of two means over the users
(training/intent_health.py lift): each user's hit on their own intent's 100 characteristic items, and their chance on
an intent drawn by share. The bootstrap resamples the users with replacement, the same users for both readings, and
recomputes both lifts: the 95% interval of their difference. The intents themselves are fixed: how much another
k-means seed (or another training seed) would move them is bench/intent_centers.py's reading, not this one.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from bench import write_json
from bench.intent_calibration import IntentInputs, intent_inputs
from elcrec.model.artifact import load_artifact
from elcrec.model.intents import IntentSpace
from elcrec.training import intent_health as ih


def hits(space: IntentSpace, got: IntentInputs) -> tuple[np.ndarray, np.ndarray]:
    """Per test user: 1 where the next item is among the own intent's lift items, and the chance of that over an
    intent drawn by share (lift = the ratio of their means)."""
    assigned = space.assign(got.states)
    scores = space.characteristic_scores(got.states.mean(0), got.items)
    own, chance = ih.lift_terms(ih.top_items(scores, ih.LIFT_TOP), assigned, got.nxt, ih.shares(assigned, space.k),
                                got.items.shape[0])
    return own.numpy(), chance.numpy()


def paired_bootstrap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], draws: int, seed: int
                     ) -> dict[str, Any]:
    """lift(a) - lift(b) on the users, and its 95% interval over `draws` resamplings of the users."""
    users = len(a[0])
    rng = np.random.default_rng(seed)
    diffs = np.empty(draws)
    for d in range(draws):
        i = rng.integers(0, users, users)
        diffs[d] = a[0][i].mean() / a[1][i].mean() - b[0][i].mean() / b[1][i].mean()
    lift_a, lift_b = a[0].mean() / a[1].mean(), b[0].mean() / b[1].mean()
    return {"users": users, "lift_as_stored": round(float(lift_a), 3), "lift_k_means": round(float(lift_b), 3),
            "difference": round(float(lift_a - lift_b), 3),
            "ci95": [round(float(np.quantile(diffs, 0.025)), 3), round(float(np.quantile(diffs, 0.975)), 3)],
            "draws": draws}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="a store (its CURRENT version) or a version")
    parser.add_argument("--data", type=Path, required=True, help="the interaction file it was trained on")
    parser.add_argument("--seed", type=int, default=1, help="the k-means seed (and the bootstrap's)")
    parser.add_argument("--k", type=int, help="k-means intents (default: the version's K)")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    art = load_artifact(args.store)
    model = art.model.eval()
    got = intent_inputs(model, args.data, "test")
    fitted = ih.fitted_centers(model, got.data, args.k or art.config.n_intents, args.seed)
    result = paired_bootstrap(hits(art.intents.to("cpu"), got), hits(ih.calibrate(got.train, fitted, False), got),
                              args.draws, args.seed)
    print(f"lift@100 as stored {result['lift_as_stored']:.3f}, k-means (seed {args.seed}) {result['lift_k_means']:.3f}:"
          f" difference {result['difference']:+.3f}, 95% interval over the {result['users']} test users "
          f"[{result['ci95'][0]:+.3f}, {result['ci95'][1]:+.3f}]")
    write_json({"store": str(args.store), "version": art.version, "seed": args.seed, **result}, args.out)


if __name__ == "__main__":
    main()
