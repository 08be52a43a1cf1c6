"""bench.load end to end on a tiny model: a real redis-server, the real service, the peer, every phase answered."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.service import ITEM_IDS, add_version, clean_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (make setup)")
def test_every_phase_answers_and_repeats_come_from_the_answer_cache(tmp_path: Path) -> None:
    store = tmp_path / "store"
    add_version(store)
    data = tmp_path / "data.txt"  # real-history mode: users' lines as in the benchmark data sets
    known = [i for i in ITEM_IDS if i is not None]
    data.write_text("".join(f"u{u} " + " ".join(known[(u + j) % len(known)] for j in range(6)) + "\n"
                            for u in range(30)))
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", "--artifacts", str(store), "--data", str(data), "--users", "20",
         "--duration", "1", "--generator", "httpx", "--peer", "--out", str(out)],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    results = report["results"]
    assert set(results) == {"live_32", "recommend_user_32", "recommend_user_4", "recommend_history_32",
                            "recommend_new_32", "recommend_new_4", "peer_32", "peer_4"}
    assert all(r["requests"] > 0 and r["non_2xx"] == 0 for r in results.values())
    assert results["recommend_user_4"]["answer_cache_hit_rate"] > 0.9  # 20 users asked again and again
    assert report["summary"]["errors"] == 0 and report["summary"]["vs_peer_32"] > 0
