"""bench.results end to end on synthetic files named like the benchmarks: train (several at once), collect, table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from elcrec.model.artifact import MANIFEST, Manifest, ManifestInfo
from elcrec.model.config import ModelConfig

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.results", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def synthetic(path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "elcrec", "data", "synthetic", "--out", str(path), "--users", "300",
                           "--items", "50", "--intents", "3"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr


def test_two_seeds_trained_at_once_land_in_the_table_and_a_rerun_trains_nothing(tmp_path):
    data, stores, docs = tmp_path / "data", tmp_path / "stores", tmp_path / "docs"
    synthetic(data / "Beauty.txt")
    args = ["--data-dir", str(data), "--sets", "Beauty", "--seeds", "1", "2", "--variant", "faithful", "--epochs", "1",
            "--jobs", "2", "--store-root", str(stores), "--docs", str(docs)]
    done = bench(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads((docs / "results.json").read_text())["runs"]
    assert [(r["data"], r["variant"], r["seed"], r["epochs_run"], r["device"]) for r in runs] == [
        ("Beauty", "faithful", 1, 1, "cpu"), ("Beauty", "faithful", 2, 1, "cpu")]
    assert runs[0]["metrics"] != runs[1]["metrics"]  # two seeds, two models
    for seed in (1, 2):  # each run's own output file (several at once) and its committed epoch log
        assert "exported" in (stores / f"Beauty-faithful-seed{seed}.out").read_text()
        assert len((docs / "logs" / f"Beauty-faithful-seed{seed}.jsonl").read_text().splitlines()) == 1
    table = (docs / "RESULTS.md").read_text()
    # 1*: stopped by --epochs 1, not by patience
    assert "| Beauty | ours, faithful | 1,2 | 1* (1), 1* (1) |" in table and "| Beauty | ELCRec (paper) |" in table
    assert "Runs marked GPU" not in table  # every run here trained on the CPU: no GPU is named
    again = bench(*args)  # finished runs are reused, not trained again
    assert again.returncode == 0 and "$ " not in again.stdout, again.stdout


def test_a_run_that_fails_is_named_and_the_exit_status_says_so(tmp_path):
    data, stores, docs = tmp_path / "data", tmp_path / "stores", tmp_path / "docs"
    data.mkdir()
    (data / "Beauty.txt").write_text("u1 1 2\nnot a line of ids\n")
    done = bench("--data-dir", str(data), "--sets", "Beauty", "--seeds", "1", "--epochs", "1", "--jobs", "2",
                 "--store-root", str(stores), "--docs", str(docs))
    assert done.returncode != 0
    assert "not finished: Beauty faithful seed 1" in done.stderr
    assert "failed (its output:" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_a_missing_data_file_is_named(tmp_path):
    done = bench("--data-dir", str(tmp_path), "--sets", "Yelp", "--docs", str(tmp_path / "docs"))
    assert done.returncode != 0 and "Yelp.txt is absent" in done.stderr


def test_the_intents_of_a_run_are_read_from_its_latest_calibration(tmp_path):
    from bench.results import calibrated

    def version(name: str, origin: dict) -> None:
        (tmp_path / name).mkdir()
        manifest = Manifest(name, ModelConfig(n_items=10), {}, ManifestInfo(origin=origin))
        (tmp_path / name / MANIFEST).write_text(json.dumps(manifest.to_json()))

    version("v0001", {"kind": "trained"})
    assert calibrated(tmp_path, "v0001") == "v0001"
    version("v0002", {"kind": "intents-fit", "parent": "v0001"})  # other centers: not the run's intents
    version("v0003", {"kind": "calibrated", "parent": "v0001"})
    version("v0004", {"kind": "calibrated", "parent": "v0002"})
    assert calibrated(tmp_path, "v0001") == "v0003"
    version("v0005", {"kind": "calibrated", "parent": "v0003"})  # the calibration calibrated again by later code
    assert calibrated(tmp_path, "v0001") == "v0005"
