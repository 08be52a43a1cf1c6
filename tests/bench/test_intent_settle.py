"""bench.intent_settle on a real store: the trained, settled and random-start centers read against k-means."""

from __future__ import annotations

import json

from tests.bench.test_intent_checkpoint import balanced_store, run


def test_a_versions_centers_are_read_trained_settled_and_from_random_states(tmp_path):
    store, data = balanced_store(tmp_path, "--intent-settle", "0"), tmp_path / "syn.txt"
    read = run("bench.intent_settle", "--store", str(store), "--data", str(data), "--epochs", "1,2",
               "--batches", "64", "--out", str(tmp_path / "r.json"))
    assert read.returncode == 0, read.stderr
    got = json.loads((tmp_path / "r.json").read_text())
    assert got["k"] == 3 and got["version"] == "v0001"
    assert set(got["readings"]) == {"as trained", "settled 1 epochs, batch 64", "settled 2 epochs, batch 64",
                                    "settled 2 epochs from random states", "k-means (intents fit)"}
    assert all(1.0 <= r["effective"] <= 3.0 for r in got["readings"].values())


def test_a_missing_store_is_named(tmp_path):
    read = run("bench.intent_settle", "--store", str(tmp_path / "none"), "--data", str(tmp_path / "x.txt"))
    assert read.returncode == 2 and "Traceback" not in read.stderr and "none" in read.stderr
