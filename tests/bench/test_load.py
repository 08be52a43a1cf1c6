"""bench.load end to end on a tiny model: a real redis-server, the real service, the peer, every phase answered."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load import new_histories
from tests.support.service import ITEM_IDS, add_version, clean_env

ROOT = Path(__file__).resolve().parents[2]
KNOWN = [i for i in ITEM_IDS if i is not None]


def data_file(tmp_path: Path) -> Path:
    data = tmp_path / "data.txt"  # real-history mode: users' lines as in the benchmark data sets
    data.write_text("".join(f"u{u} " + " ".join(KNOWN[(u * 7 + j * 3) % len(KNOWN)] for j in range(12)) + "\n"
                            for u in range(40)))
    return data


def test_new_histories_are_every_prefix_each_once(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("u1 a b c\nu2 a b\nu3 x a\n")  # u2's prefixes are u1's; x is unknown
    got = new_histories(data, {"a", "b", "c"}, random.Random(0))
    assert sorted(got) == [["a"], ["a", "b"], ["a", "b", "c"]]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (make setup)")
def test_every_request_new_sends_no_body_twice_and_repeats_come_from_the_answer_cache(tmp_path: Path) -> None:
    store = tmp_path / "store"
    add_version(store)
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", "--artifacts", str(store), "--data", str(data_file(tmp_path)),
         "--users", "20", "--duration", "1", "--rounds", "2", "--generator", "httpx", "--peer", "--out", str(out)],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.index("every request new") < done.stdout.index("cached")  # the headline first
    report = json.loads(out.read_text())
    results = report["results"]
    assert set(results) == {"warm_up", "peer_warm_up", "live_32", "new_32", "new_4", "user_32", "user_4",
                            "history_32", "peer_new_32", "peer_new_4"}
    assert all(r["requests"] > 0 and r["non_2xx"] == 0 for r in results.values())
    sent = report["sent_new_bodies"]
    assert sent["sent"] == sent["distinct"] == sum(
        results[p]["requests"] for p in ("warm_up", "peer_warm_up", "new_32", "new_4", "peer_new_32", "peer_new_4"))
    assert report["summary"]["no_body_twice"]
    assert report["summary"]["new_cache_hits"] == 0  # the service's own counter: nothing new was in the cache
    assert results["new_32"]["answer_cache"]["miss"] == results["new_32"]["requests"]
    assert len(results["new_32"]["rounds"]) == 2
    assert results["user_4"]["answer_cache"]["hit"] > 0.9 * results["user_4"]["requests"]  # 20 users again
    assert report["summary"]["errors"] == 0 and report["summary"]["new_vs_peer_32"] > 0
