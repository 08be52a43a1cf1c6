"""Are a version's intents about something a person can name? Intent health beside category coherence and the
labels, for the version's intents and for a k-means fitted on the same encoder (`elcrec intents fit`).

    python -m bench.intent_labels --store STORE --data FILE [--catalog FILE] [--field genre] [--out X.json]

Per reading, on the test users (training/intent_health.py): effective number, overlap and lift@100 (the health),
and coherence: the share of the most common value of --field among each intent's 20 characteristic items against
lists of 20 drawn by popularity (ratio; 1 = no more alike than chance). Then the labels of the largest intents
(model/intent_labels.py). The catalog is the version's own unless --catalog gives one. Nothing is trained.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from bench import write_json
from bench.intent_calibration import intent_inputs, reading
from elcrec.model.artifact import Artifact, load_artifact
from elcrec.model.catalog import Catalog, ItemCategories, item_categories, read_catalog
from elcrec.model.intent_labels import version_labels
from elcrec.model.intents import IntentSpace
from elcrec.training import intent_health as ih

SHOWN = 8  # labels printed per reading, largest intents first


def coherence_of(space: IntentSpace, test: Any, items: Any, cats: ItemCategories, field: str,
                 popularity: np.ndarray) -> ih.Coherence:
    scores = space.characteristic_scores(test.mean(0), items)
    return ih.coherence(ih.top_items(scores, ih.COHERENCE_TOP).numpy(), cats, field, popularity)


def readings(art: Artifact, data: Path, catalog: Catalog, field: str, k: int | None = None, seed: int = 1
             ) -> dict[str, Any]:
    """On the test users of `data`: health, coherence on `field` and the largest intents' labels, for the version's
    intents ("as stored") and for a k-means of `k` intents (default: the version's K) on the same encoder."""
    cats = item_categories(catalog, art.item_ids)
    model = art.model.eval()
    got = intent_inputs(model, data, "test")
    popularity = np.bincount(got.data.items, minlength=art.config.n_items + 1)[1 : art.config.n_items + 1]
    fitted = ih.fitted_centers(model, got.data, k or art.config.n_intents, seed)
    spaces = {"as stored": art.intents.to("cpu"),
              "k-means (intents fit)": ih.calibrate(got.train, fitted, balance=False)}
    rows: dict[str, Any] = {}
    for name, space in spaces.items():
        health = reading(got.states, space, got.items, got.nxt)
        coh = coherence_of(space, got.states, got.items, cats, field, popularity)
        labels = version_labels(space, got.states.mean(0), got.items, cats)
        sizes = ih.shares(space.assign(got.states), space.k).tolist()
        largest = sorted(range(space.k), key=lambda i: -sizes[i])[:SHOWN]
        rows[name] = {"k": space.k, **health, "coherence": coh.to_dict(),
                      "named": sum(1 for label in labels if label.categories),
                      "labels": [{"intent": i, "share": round(sizes[i], 4), **labels[i].to_dict()} for i in largest]}
    return {"field": field, "test_users": len(got.states), "readings": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="a store (its CURRENT version) or a version")
    parser.add_argument("--data", type=Path, required=True, help="the interaction file it was trained on")
    parser.add_argument("--catalog", type=Path, help="a catalog file (default: the version's own)")
    parser.add_argument("--id-column", default="id")
    parser.add_argument("--title-column", default="title")
    parser.add_argument("--multi-sep", default="|")
    parser.add_argument("--field", help="the categorical field of the coherence (default: the catalog's first)")
    parser.add_argument("--k", type=int, help="k-means intents (default: the version's K)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    art = load_artifact(args.store)
    catalog = (read_catalog(args.catalog, args.id_column, args.title_column, args.multi_sep)
               if args.catalog is not None else art.read_catalog())
    if catalog is None:
        parser.error(f"{art.version} has no catalog: give one with --catalog")
    field = args.field or (catalog.fields[0] if catalog.fields else None)
    if field is None or field not in catalog.fields:
        parser.error(f"no categorical field {field!r} in {catalog.source} (fields: {', '.join(catalog.fields)})")
    result = readings(art, args.data, catalog, field, args.k, args.seed)
    for name, row in result["readings"].items():
        coh = row["coherence"]
        print(f"{name:<22} K {row['k']:>4}  effective {row['effective']:6.1f}  overlap {row['overlap']:.4f}  "
              f"lift@100 {row['lift']:.2f}  coherence ({field}) {coh['own']:.3f} vs {coh['random']:.3f} random = "
              f"{coh['ratio']}  intents named by a category {row['named']}/{row['k']}")
        for entry in row["labels"]:
            print(f"    intent {entry['intent']:>4} ({entry['share']:.1%}): {entry['text']}")
    write_json({"store": str(args.store), "version": art.version, "catalog": catalog.source, **result}, args.out)


if __name__ == "__main__":
    main()
