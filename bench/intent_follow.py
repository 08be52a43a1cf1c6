"""How should a retrain's centers follow the live version's? Variants read on one retrain's candidate encoder.

    python -m bench.intent_follow --store STORE --live v0001 --candidate v0002 [--pulls 0.1,0.3] [--out FILE.json]

STORE holds the live version, a version retrained from it (its encoder is the candidate's: the centers do not
change it) and the retrain's merged data (STORE/data/CANDIDATE.txt), e.g. the scratch store that bench.intent_ids
keeps with --workdir. Each variant gives the candidate encoder other centers, calibrated as export calibrates them;
read for every user with a known item: the share whose intent (whole history, as the service reads it) is the one
the live version serves, the intents dissolved and born (training/intent_ids.py transitions), and the intent health
on the test users. Variants: the candidate's own centers; the live version's intents as they are (centers and
bias); the live centers recalibrated; settled again from them (the balanced loss, as training settles), freely or
anchored on each user's live intent (the live intent's score raised by `pull` in the balanced assignment); and the
live centers carried into the candidate's state space (orthogonal Procrustes: what `elcrec retrain` does).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench import write_json
from elcrec.model.artifact import Store
from elcrec.model.intents import IntentSpace
from elcrec.training.data import Interactions, left_pad, read_interactions
from elcrec.training.evaluate import pooled_states
from elcrec.training.intent_health import calibrate, model_health, trained_balanced, training_states
from elcrec.training.intent_ids import LiveIntents, transitions
from elcrec.training.intent_settle import SETTLE_BATCH, SETTLE_LR
from elcrec.training.losses import sinkhorn


def anchored_settle(
    states: torch.Tensor, centers: torch.Tensor, anchor: torch.Tensor, pull: float, epochs: int, temperature: float,
    seed: int = 1,
) -> torch.Tensor:
    """intent_settle.settle_centers with each row's balanced target leaning to its live intent (anchor, -1: none)
    by `pull` added to its score in the Sinkhorn assignment (0: settle_centers itself)."""
    weights = torch.nn.Parameter(F.normalize(centers.float().clone(), dim=-1))
    optimizer = torch.optim.Adam([weights], lr=SETTLE_LR)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(states), generator=gen)
        for start in range(0, len(order), SETTLE_BATCH):
            rows = order[start : start + SETTLE_BATCH]
            scores = states[rows] @ F.normalize(weights, dim=-1).T
            prior = torch.zeros_like(scores)
            has = anchor[rows] >= 0
            prior[has.nonzero().squeeze(1), anchor[rows][has]] = pull
            q = sinkhorn(scores.detach() + prior)
            loss = -(q * F.log_softmax(scores / temperature, dim=1)).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return F.normalize(weights.detach(), dim=-1)


def training_ids(live: LiveIntents, data: Interactions) -> torch.Tensor:
    """The live intent of each user's training sequence, row for row with intent_health.training_states."""
    seqs = [data.sequence(u)[:-2] for u in range(data.n_users)]
    return torch.from_numpy(live.ids([s for s in seqs if len(s)]))


def measure(store: Path, live_version: str, candidate_version: str, pulls: list[float], epochs: int) -> dict[str, Any]:
    live_art, cand = Store(store).load(live_version), Store(store).load(candidate_version)
    data = read_interactions(Store(store).merged_data(candidate_version)[0], n_items=len(cand.item_ids) - 2)
    live = LiveIntents(live_art.model, live_art.intents, live_art.config.n_items, live_version)
    k = live_art.config.n_intents
    seqs = [data.sequence(u) for u in range(data.n_users)]
    old = live.ids(seqs)
    has = old >= 0
    pooled = pooled_states(cand.model, left_pad(seqs, cand.config.max_len)).float()
    states = training_states(cand.model, data).cpu()
    balance = trained_balanced(live_art.info.origin)
    temperature = live_art.info.intent_temperature
    live_centers = live_art.model.intent_centers.detach().float().cpu()
    rows: list[dict[str, Any]] = []

    def read(name: str, space: IntentSpace, seconds: float = 0.0) -> None:
        new = space.assign(pooled).numpy()
        t = transitions(old[has], new[has], k, k)
        health = model_health(cand.model, data, "test", "cpu", space).to_dict()
        rows.append({"variant": name, "users_kept": round(float((new[has] == old[has]).mean()), 4),
                     "dissolved": len(t["dissolved"]), "born": len(t["born"]), "merged": len(t["merged"]),
                     "test_health": {m: health[m] for m in ("effective", "overlap", "lift")},
                     "seconds": round(seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)

    read(f"{candidate_version} as published", cand.intents)
    read(f"{live_version}'s intents as they are (centers and bias)", live_art.intents)
    read(f"{live_version}'s centers, recalibrated", calibrate(states, live_centers, balance))
    anchor = training_ids(live, data)
    for pull in [0.0, *pulls]:
        started = time.perf_counter()
        settled = anchored_settle(states, live_centers, anchor, pull, epochs, temperature)
        name = "settled freely from them" if pull == 0 else f"settled from them, anchored (pull {pull})"
        read(name, calibrate(states, settled, balance), time.perf_counter() - started)
    started = time.perf_counter()
    carried, fit = live.transport(cand.model, data)
    read(f"carried into the candidate's space (states' mean cosine after the rotation {fit:.3f})",
         calibrate(states, carried, balance), time.perf_counter() - started)
    return {"store": str(store), "live": live_version, "candidate": candidate_version, "users": int(has.sum()),
            "settle_epochs": epochs, "variants": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--live", required=True, help="the live version the retrain started from")
    parser.add_argument("--candidate", required=True, help="the version the retrain published")
    parser.add_argument("--pulls", default="0.1,0.3", help="anchor strengths to try (comma-separated)")
    parser.add_argument("--epochs", type=int, default=100, help="settling epochs (training's default)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    pulls = [float(p) for p in args.pulls.split(",") if p]
    result = measure(args.store, args.live, args.candidate, pulls, args.epochs)
    write_json(result, args.out)


if __name__ == "__main__":
    main()
