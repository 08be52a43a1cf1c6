"""bench.serve_large_catalog end to end on a small catalog: the stored index is used, served results agree with
exact search, the load is answered, and a start-up that builds the index is timed."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.bench.test_load import ROOT
from tests.support.service import clean_env


def test_a_small_catalog_is_exported_served_checked_and_loaded() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.serve_large_catalog", "--items", "3000", "--duration", "1", "--rebuild",
         "--json"],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)  # progress goes to stderr with --json
    assert report["items"] == 3000 and report["index"] == "HNSW32"
    assert set(report["artifact_mb"]) == {"index.faiss", "items.json", "manifest.json", "weights.safetensors"}
    assert report["stored_index_used"]
    assert report["served_recall@10"] >= 0.9  # HNSW on a small catalog: nearly exact
    assert report["load"]["requests"] > 0 and report["load"]["non_2xx"] == 0
    assert report["rebuild_spec"] == "HNSW32,Flat" and report["startup_rebuild_s"] > 0
    assert "exported" in done.stderr and "served recall@10" in done.stderr
