"""bench.intent_ids end to end on a tiny balanced model (a real redis-server, the real service, the real job), and
bench.intent_follow on the store it keeps."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.bench.test_intent_checkpoint import balanced_store, run


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (make setup)")
def test_intents_are_read_through_the_service_before_and_after_a_published_retrain(tmp_path):
    store, data = balanced_store(tmp_path, "--intent-settle", "2"), tmp_path / "syn.txt"
    read = run("bench.intent_ids", "--artifacts", str(store), "--data", str(data), "--users", "100", "--share",
               "0.05", "--epochs", "1", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "r.json"))
    assert read.returncode == 0, read.stderr
    got = json.loads((tmp_path / "r.json").read_text())
    assert (got["served_before"], got["served_after"], got["published"]) == (["v0001"], ["v0002"], "v0002")
    assert got["users_read"] == 100 and got["users_with_events"] > 0 and 0.0 <= got["users_kept"] <= 1.0
    assert got["job"]["train"]["intent_following"]["from"] == "v0001"
    assert got["job"]["intents"]["intents"]["kept"] <= 3 and got["intent_health_test"]["after"]["intents"] == 3

    follow = run("bench.intent_follow", "--store", str(tmp_path / "work" / "store"), "--live", "v0001",
                 "--candidate", "v0002", "--epochs", "2", "--pulls", "0.1", "--out", str(tmp_path / "f.json"))
    assert follow.returncode == 0, follow.stderr
    variants = {v["variant"].split(" (")[0]: v for v in json.loads((tmp_path / "f.json").read_text())["variants"]}
    assert set(variants) == {"v0002 as published", "v0001's intents as they are", "v0001's centers, recalibrated",
                             "settled freely from them", "settled from them, anchored", "carried into the candidate's space"}
    # what the job did is the carried variant: the same users keep their intent
    assert variants["carried into the candidate's space"]["users_kept"] == variants["v0002 as published"]["users_kept"]
