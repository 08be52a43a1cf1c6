"""bench.soak end to end, briefly: a real redis-server and service under wrk while versions are published."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_load import ROOT
from tests.support.service import clean_env


@pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("wrk") is None,
                    reason="bench.soak needs redis-server and wrk (apt-get install redis-server wrk)")
def test_a_short_soak_serves_every_kind_and_ends_on_the_last_version(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--duration", "10", "--window", "4", "--reload-every", "2",
         "--items", "300", "--users", "30", "--connections", "3", "--out", str(out)],
        cwd=ROOT, env=clean_env(ELCREC_THREADS="1"), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    s = report["summary"]
    assert s["requests"] > 0 and s["non_2xx"] == 0 and not s["publisher_errors"]
    assert set(s["by_kind"]) == {"user", "history", "events"}
    assert all(k["ok"] > 0 and k["bad"] == 0 for k in s["by_kind"].values())
    # every version published was taken up, the last one is served
    assert s["versions_published"] >= 2 and s["reloads_seen_by_service"] >= 1 and s["reload_failures"] == 0
    assert s["served_at_end"] == f"v{s['versions_published'] + 1:04d}" and s["ready_at_end"]
    assert s["events_in_stream"] >= s["events_acknowledged"] > 0  # no acknowledged event lost
    assert len(report["rss_samples"]) == len(report["windows"]) + 1
    assert "TOKEN" not in json.dumps(report["settings"]) and "soak-admin-token" not in done.stdout
