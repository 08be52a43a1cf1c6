"""The catalog on the command line: `elcrec train --catalog`, `elcrec catalog set` (the same model again with a
catalog, no retraining), versions made from another keeping it, and malformed catalogs refused with the row named."""

from __future__ import annotations

import json
from pathlib import Path

from elcrec.training.synthetic import SyntheticSpec, planted_item_intents
from tests.support.cli import run_cli

SPEC = SyntheticSpec(n_users=300, n_items=60, n_intents=3, seed=0)  # what `data synthetic` below writes


def manifest(store: Path, version: str) -> dict:
    return json.loads((store / version / "manifest.json").read_text())


def write_catalog(path: Path, title: str = "Item") -> Path:
    groups = planted_item_intents(SPEC)
    rows = [f"{i},{title} {i},genre {groups[i]}|tag {i % 7},shelf {i % 2}" for i in range(1, SPEC.n_items + 1)]
    path.write_text("item,name,genre,shelf\n" + "\n".join(rows) + "\n")
    return path


def test_train_with_a_catalog_then_catalog_set_publishes_the_same_model_with_a_new_one(tmp_path: Path) -> None:
    data, store = tmp_path / "syn.txt", tmp_path / "store"
    assert run_cli("data", "synthetic", "--out", str(data), "--users", "300", "--items", "60", "--intents", "3",
                   "--seed", "0").returncode == 0
    catalog = write_catalog(tmp_path / "items.csv")
    trained = run_cli("train", "--data", str(data), "--out", str(store), "--epochs", "2", "--layers", "1",
                      "--intents", "3", "--hidden", "16", "--no-progress", "--catalog", str(catalog),
                      "--id-column", "item", "--title-column", "name")
    assert trained.returncode == 0, trained.stderr
    first = manifest(store, "v0001")
    assert first["catalog"] == {"file": "catalog.jsonl", "items": 60, "fields": ["genre", "shelf"],
                                "source": "items.csv", "known_items": 60}
    stored = [json.loads(line) for line in (store / "v0001" / "catalog.jsonl").read_text().splitlines()]
    assert stored[0] == {"id": "1", "title": "Item 1", "genre": [f"genre {planted_item_intents(SPEC)[1]}", "tag 1"],
                         "shelf": ["shelf 1"]}
    # evaluate shows the intents' coherence in the catalog's first field beside their health
    evaluated = run_cli("evaluate", str(store), "--data", str(data), "--json")
    coherence = json.loads(evaluated.stdout)["intents"]["coherence"]
    assert coherence["field"] == "genre" and coherence["top"] == 20 and 0 < coherence["random"] <= 1 and 0 < coherence["own"] <= 1
    # intents fitted again: a version made from another keeps its catalog
    assert run_cli("intents", "fit", str(store), "--data", str(data)).returncode == 0
    assert manifest(store, "v0002")["files"]["catalog.jsonl"] == first["files"]["catalog.jsonl"]

    newer = write_catalog(tmp_path / "newer.csv", title="Film")
    done = run_cli("catalog", "set", str(store), str(newer), "--id-column", "item", "--title-column", "name")
    assert done.returncode == 0, done.stderr
    assert "published v0003 with the catalog newer.csv: 60 items, fields genre, shelf" in done.stdout
    old, new = manifest(store, "v0002"), manifest(store, "v0003")
    assert (store / "CURRENT").read_text().strip() == "v0003" and new["parent"] == "v0002"
    for same in ("weights.safetensors", "items.json"):
        assert new["files"][same] == old["files"][same]
    for same in ("metrics", "origin", "intent_shares", "intent_mean_state", "intent_health", "popular_items"):
        assert new[same] == old[same]
    assert new["files"]["catalog.jsonl"] != old["files"]["catalog.jsonl"] and new["catalog"]["source"] == "newer.csv"
    assert '"title": "Film 1"' in (store / "v0003" / "catalog.jsonl").read_text()


def test_catalog_set_refuses_a_malformed_catalog_naming_the_row(tmp_path: Path) -> None:
    from tests.support.service import add_version

    add_version(tmp_path / "store")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,title\ni1,One\ni2,Two\ni1,Again\n")
    done = run_cli("catalog", "set", str(tmp_path / "store"), str(bad))
    assert done.returncode == 2 and f"error: {bad} row 3 (line 4): id 'i1' again (first on row 1)" in done.stderr
    missing = run_cli("catalog", "set", str(tmp_path / "store"), str(bad), "--id-column", "sku")
    assert missing.returncode == 2 and "has no id column 'sku' (its columns: id, title)" in missing.stderr
    unrelated = tmp_path / "other.csv"
    unrelated.write_text("id,title\nx1,One\n")
    done = run_cli("catalog", "set", str(tmp_path / "store"), str(unrelated))
    assert done.returncode == 2 and "knows none of the model's 40 items" in done.stderr
    assert (tmp_path / "store" / "CURRENT").read_text().strip() == "v0001"
    empty = run_cli("catalog", "set", str(tmp_path / "nothing"), str(bad))
    assert empty.returncode == 2 and "has no CURRENT version" in empty.stderr
