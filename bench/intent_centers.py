"""Which centers, chosen after training on the frozen encoder, match a k-means fitted on it? Balanced-trained centers
settled in other ways, a k-means settled by the balanced loss, each read with and without the balancing bias,
against k-means of several seeds: on the validation and the test users, health and category coherence.

    python -m bench.intent_centers --store STORE --data FILE --field genre [--seed S] [--draws 10]
        [--prefixes 2,8] [--out docs/bench/intent-centers-X.json]

STORE is an `elcrec train` store with its run directory (STORE/runs/*): the centers as trained are the run's kept
weights (the version may hold settled ones), the encoder is the same either way. Per candidate set of centers
(training/intent_settle.py settle_centers with the given epochs and temperature; k-means: `elcrec intents fit`'s,
seed S; a consensus of the k-means of --draws seeds: their K x draws centers clustered into K, then
refined on the states) and per strength of the balancing bias (0: each user in the nearest center; 1: what export fits for
balanced-trained centers; training/intent_health.py calibrate), on the validation and the test users: effective
number, overlap, lift@100 (training/intent_health.py) and coherence in --field (bench/intent_labels.py). Then what a
choice on the validation users alone would have kept: the highest validation lift@100 among the candidates with an
effective number of at least K/2. With --prefixes P,...: the trained centers settled (1000 epochs at T 0.2)
on the training states together with the states of each user's history P items shorter, P = 1.. each, the
histories a user's intent is read from as they grow. And the k-means of `elcrec intents fit` over --draws seeds (S, S + 1000, ...):
its spread on the test users, the yardstick's own noise. Nothing is trained but the centers.
"""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench import write_json
from bench.intent_calibration import reading
from bench.intent_labels import coherence_of
from elcrec.model.artifact import ArtifactError, load_artifact
from elcrec.model.catalog import ItemCategories, item_categories
from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace
from elcrec.training import intent_health as ih
from elcrec.training.data import Interactions, eval_split, read_interactions
from elcrec.training.evaluate import pooled_states
from elcrec.training.intent_settle import settle_centers
from elcrec.training.trainer import read_checkpoint

SPLITS = ("valid", "test")
STRENGTHS = (0.0, 0.5, 1.0)
# (epochs, temperature) of settling from the trained centers; the first is what training does now
# (config.SETTLE_EPOCHS at the default temperature)
FROM_TRAINED = ((100, 0.1), (300, 0.1), (100, 0.2), (300, 0.2), (1000, 0.2), (3000, 0.2), (300, 0.5), (1000, 0.5),
                (1000, 1.0))
FROM_KMEANS = ((10, 0.1), (30, 0.2), (100, 0.1), (100, 0.2))


@dataclass(frozen=True)
class Split:
    states: torch.Tensor  # normalised pooled states (U, d)
    nxt: torch.Tensor  # next items, 0-based columns (U,)


def split_inputs(model: ELCRec, data: Interactions, split: str) -> Split:
    ev = eval_split(data, model.cfg.max_len, split)
    return Split(F.normalize(pooled_states(model, ev.inputs).float(), dim=-1), torch.from_numpy(np.asarray(ev.targets) - 1))


def run_dir(store: Path) -> Path:
    runs = sorted(p for p in (store / "runs").glob("*") if (p / "checkpoint.pt").is_file())
    if len(runs) != 1:
        raise SystemExit(f"error: {store}/runs holds {len(runs)} run checkpoints; one is needed (the trained centers)")
    return runs[0]


def consensus_centers(states: torch.Tensor, draws: list[torch.Tensor], seed: int) -> torch.Tensor:
    """K centers from several k-means of the same states (K, d each): the K x draws centers clustered into K by a
    spherical k-means (5 restarts), then refined by one on the states from there; normalised (K, d)."""
    import faiss

    k = draws[0].shape[0]

    def spherical(x: np.ndarray, init: np.ndarray | None = None, nredo: int = 1) -> np.ndarray:
        km = faiss.Kmeans(x.shape[1], k, niter=25, nredo=nredo, seed=seed, spherical=True, verbose=False,
                          min_points_per_centroid=1, max_points_per_centroid=max(256, math.ceil(len(x) / k)))
        km.train(np.ascontiguousarray(x), init_centroids=init)
        assert km.centroids is not None
        return np.asarray(km.centroids, dtype=np.float32)

    pooled = spherical(torch.cat(draws).numpy(), nredo=5)
    return F.normalize(torch.from_numpy(spherical(states.numpy(), init=pooled)), dim=-1)


def choose(rows: dict[str, dict[str, Any]], k: int) -> str:
    """The candidate a choice on validation users alone keeps: the highest lift@100, effective number >= K/2 (ties:
    the lower overlap)."""
    fit = [n for n, r in rows.items() if r["valid"]["effective"] >= k / 2]
    return max(fit, key=lambda n: (rows[n]["valid"]["lift"], -rows[n]["valid"]["overlap"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="an elcrec train store with its run directory")
    parser.add_argument("--data", type=Path, required=True, help="the interaction file it was trained on")
    parser.add_argument("--field", required=True, help="the catalog's categorical field of the coherence")
    parser.add_argument("--seed", type=int, default=1, help="the training seed (k-means and settling draw from it)")
    parser.add_argument("--draws", type=int, default=10, help="k-means seeds read for the yardstick's spread")
    parser.add_argument("--prefixes", default="", help="comma-separated P: settle on P shorter histories as well")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    try:
        art = load_artifact(args.store, verify=False)
    except ArtifactError as exc:
        parser.error(str(exc))
    catalog = art.read_catalog()
    if catalog is None or args.field not in catalog.fields:
        parser.error(f"{art.version} has no catalog field {args.field!r}")
    model = read_checkpoint(run_dir(args.store)).model()
    data = read_interactions(args.data, n_items=model.cfg.n_items)
    cats: ItemCategories = item_categories(catalog, art.item_ids)
    n = model.cfg.n_items
    popularity = np.bincount(data.items, minlength=n + 1)[1 : n + 1]
    train = ih.training_states(model, data)
    items = model.item_table().detach().float()[1:-1]
    splits = {name: split_inputs(model, data, name) for name in SPLITS}
    trained = model.intent_centers.detach().float()
    k = trained.shape[0]

    def read(space: IntentSpace) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sp in splits.items():
            coh = coherence_of(space, sp.states, items, cats, args.field, popularity)
            out[name] = {**reading(sp.states, space, items, sp.nxt), "coherence": round(coh.ratio or 0.0, 4)}
        return out

    drawn = [ih.fitted_centers(model, data, k, args.seed + 1000 * i) for i in range(args.draws)]
    fitted = drawn[0]
    centers = {"trained": trained, "k-means": fitted,
               f"consensus of {args.draws} k-means": consensus_centers(train, drawn, args.seed)}
    for epochs, temperature in FROM_TRAINED:
        centers[f"trained, settled {epochs} at T {temperature}"] = settle_centers(train, trained, epochs, temperature,
                                                                                 args.seed)
    for epochs, temperature in FROM_KMEANS:
        centers[f"k-means, settled {epochs} at T {temperature}"] = settle_centers(train, fitted, epochs, temperature,
                                                                                 args.seed)
    for p in (int(v) for v in args.prefixes.split(",") if v.strip()):
        grown = torch.cat([train, *(ih.training_states(model, data, shorter=q) for q in range(1, p + 1))])
        centers[f"trained, settled 1000 at T 0.2 on {p} prefixes"] = settle_centers(grown, trained, 1000, 0.2, args.seed)
    rows = {f"{name}, bias {s}": read(ih.calibrate(train, c, s > 0, s)) for name, c in centers.items() for s in STRENGTHS}
    chosen = choose(rows, k)
    draws = [read(ih.calibrate(train, c, balance=False))["test"] for c in drawn]
    spread = {m: {"mean": round(statistics.fmean(d[m] for d in draws), 4),
                  "sd": round(statistics.stdev(d[m] for d in draws), 4) if len(draws) > 1 else 0.0,
                  "min": min(d[m] for d in draws), "max": max(d[m] for d in draws)}
              for m in ("effective", "lift", "coherence")}
    reference = rows["k-means, bias 0.0"]["test"]
    for name, r in rows.items():
        t = r["test"]
        mark = "+" if t["lift"] >= reference["lift"] and t["coherence"] >= reference["coherence"] else " "
        print(f"{mark} {name:<42} valid lift {r['valid']['lift']:.2f}  test effective {t['effective']:5.1f}  "
              f"overlap {t['overlap']:.4f}  lift@100 {t['lift']:.2f}  coherence {t['coherence']:.3f}")
    print(f"chosen on validation: {chosen}")
    print(f"k-means over {args.draws} seeds, test: " + "  ".join(
        f"{m} {v['mean']} ± {v['sd']} [{v['min']}, {v['max']}]" for m, v in spread.items()))
    write_json({"store": str(args.store), "version": art.version, "field": args.field, "seed": args.seed, "k": k,
                "users": {name: len(sp.states) for name, sp in splits.items()}, "readings": rows,
                "chosen_on_validation": chosen, "k_means_draws": {"seeds": args.draws, "test": spread, "each": draws}},
               args.out)


if __name__ == "__main__":
    main()
