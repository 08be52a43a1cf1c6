"""bench.intent_checkpoint on a real run directory: a balanced run's checkpoint read against k-means."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.test_results import ROOT, synthetic


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def balanced_store(tmp_path: Path, *flags: str) -> Path:
    """A one-epoch balanced model of 3 intents on synthetic data (tmp_path/syn.txt), its store tmp_path/store."""
    data = tmp_path / "syn.txt"
    synthetic(data)
    trained = run("elcrec", "train", "--data", str(data), "--out", str(tmp_path / "store"), "--epochs", "1",
                  "--layers", "1", "--intents", "3", "--hidden", "16", "--no-progress", "--intent-loss", "balanced",
                  *flags)
    assert trained.returncode == 0, trained.stderr
    return tmp_path / "store"


def test_a_runs_checkpoint_is_read_against_k_means(tmp_path):
    data = tmp_path / "syn.txt"
    (run_dir,) = (balanced_store(tmp_path, "--intent-queue", "64") / "runs").iterdir()
    read = run("bench.intent_checkpoint", "--run", str(run_dir), "--data", str(data), "--out", str(tmp_path / "r.json"))
    assert read.returncode == 0, read.stderr
    got = json.loads((tmp_path / "r.json").read_text())
    assert got["epoch"] == 1 and got["users"] == 300
    assert set(got["readings"]) == {"learned, calibrated", "learned, settled", "k-means (intents fit)",
                                    "k-means + bias"}
    assert all(1.0 <= r["effective"] <= 3.0 for r in got["readings"].values())


def test_a_missing_run_is_named(tmp_path):
    read = run("bench.intent_checkpoint", "--run", str(tmp_path), "--data", str(tmp_path / "x.txt"))
    assert read.returncode == 2 and "checkpoint.pt does not exist" in read.stderr and "Traceback" not in read.stderr
