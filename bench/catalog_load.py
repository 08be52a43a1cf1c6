"""What a large item catalog costs, step by step: reading the user's file (DuckDB), writing and reading the stored
form, the catalog over the model's rows, the intent labels (K intents over N items) and the service's prepared
view. Everything but the first two runs when the service loads a version with a catalog (service/bundle.py).

    python -m bench.catalog_load [--items 1000000] [--intents 256] [--d 64] [--out X.json]

A synthetic catalog: a title, two genres of 300 and one brand of 20000 per item; random item vectors and centers.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import write_json
from elcrec.model.catalog import item_categories, read_catalog, read_stored
from elcrec.model.intent_labels import version_labels
from elcrec.model.intents import IntentSpace
from elcrec.service.catalog import serve_catalog


def write_csv(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    genre, brand = rng.integers(0, 300, n), rng.integers(0, 20000, n)
    with path.open("w") as fh:
        fh.write("id,title,genre,brand\n")
        fh.writelines(f"i{i},Title number {i},g{genre[i]}|g{(genre[i] + 7) % 300},b{brand[i]}\n" for i in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--intents", type=int, default=256)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    seconds: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source, stored = Path(tmp) / "items.csv", Path(tmp) / "catalog.jsonl"
        write_csv(source, args.items)

        def timed(name: str, started: float) -> float:
            now = time.perf_counter()
            seconds[name] = round(now - started, 2)
            return now

        t = time.perf_counter()
        catalog = read_catalog(source)
        t = timed("read the csv (duckdb, checked)", t)
        stored.write_text(catalog.to_jsonl(), encoding="utf-8")
        t = timed("write the stored form", t)
        again = read_stored(stored, list(catalog.fields), source.name)
        t = timed("load: read the stored form", t)
        ids: list[str | None] = [None, *catalog.ids, None]
        cats = item_categories(again, ids)
        t = timed("load: catalog over the model's rows", t)
        torch.manual_seed(0)
        labels = version_labels(IntentSpace(torch.randn(args.intents, args.d)), None, torch.randn(args.items, args.d),
                                cats)
        t = timed("load: intent labels", t)
        serve_catalog(again, ids, labels)
        timed("load: the service's view", t)
    load = sum(v for k, v in seconds.items() if k.startswith("load:"))
    for name, s in seconds.items():
        print(f"{name:<40} {s:7.2f} s")
    print(f"{'load, in all':<40} {load:7.2f} s   peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10} MiB")
    write_json({"items": args.items, "intents": args.intents, "d": args.d, "seconds": seconds,
                "load_seconds": round(load, 2)}, args.out)


if __name__ == "__main__":
    main()
