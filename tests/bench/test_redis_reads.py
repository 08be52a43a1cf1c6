"""bench.redis_reads against a real redis-server: every reader reads every batch size."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.service import clean_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (make setup)")
def test_each_reader_each_batch(tmp_path: Path) -> None:
    out = tmp_path / "reads.json"
    done = subprocess.run([sys.executable, "-m", "bench.redis_reads", "--users", "200", "--rounds", "20", "--out",
                           str(out)], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {(r["reader"], r["batch"]) for r in rows} == {
        (reader, batch) for reader in ("service/resp.py", "redis-py LRANGE", "redis-py EVAL as JSON")
        for batch in (1, 8, 32, 128)
    }
    assert all(r["cpu_ms_per_batch"] > 0 for r in rows)
