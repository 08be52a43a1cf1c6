"""bench.gpu, the one command for a lent GPU, end to end on the CPU: training and serving figures in one JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def run_gpu_bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bench.gpu", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_gpu_bench_runs_on_the_cpu_and_writes_one_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    done = run_gpu_bench("--device", "cpu", "--quick", "--synthetic", "120", "--items", "60", "--users", "40",
                         "--repeats", "2", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    got = json.loads(out.read_text())
    assert got["device"] == "cpu" and got["quick"] is True
    assert got["machine"]["torch"] == torch.__version__ and got["machine"]["name"]
    train = got["training"]
    assert train["steps"] == 5 and train["preset"] == "Beauty"
    assert train["ms_per_step"] > 0 and train["sequences_per_s"] > 0 and train["projected_epoch_train_s"] > 0
    # at most a full batch a step
    assert train["sequences_per_s"] <= train["batch_size"] * 1000 / train["ms_per_step"] * 1.001
    rows = got["serving"]["results"]
    assert {(r["precision"], r["index"]) for r in rows} == {
        (p, i) for p in ("fp32", "bf16", "fp16") for i in ("Flat", "torch")}
    for row in rows:
        assert row["device"] == "cpu"
        assert all(row[f"batch{b}_ms"] > 0 and row[f"batch{b}_per_s"] > 0 for b in (1, 32, 256)), row
        assert 0.0 <= row["top10_kept_vs_fp32"] <= 1.0 and 0.0 <= row["intent_kept_vs_fp32"] <= 1.0
    fp32 = next(r for r in rows if r["precision"] == "fp32" and r["index"] == "Flat")
    assert fp32["top10_kept_vs_fp32"] == 1.0 and fp32["probe_check"] is None  # the reference itself
    assert all(r["probe_check"]["probes"] == 256 for r in rows if r["precision"] != "fp32")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: --device cuda would run")
def test_asking_for_cuda_without_one_is_a_clear_error() -> None:
    done = run_gpu_bench("--device", "cuda", "--quick", "--synthetic", "120")
    assert done.returncode == 2 and "no CUDA device is available" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_bad_input_is_a_clear_error_before_any_training(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("u1 1 2 3\nu2 4 x 5\n")
    done = run_gpu_bench("--device", "cpu", "--data", str(bad))
    assert done.returncode == 2 and "bad.txt" in done.stderr and "Traceback" not in done.stderr, done.stderr
    done = run_gpu_bench("--device", "cpu", "--synthetic", "120", "--artifacts", str(tmp_path))
    assert done.returncode == 2 and "--artifacts needs the --data" in done.stderr, done.stderr
    data = tmp_path / "data.txt"
    data.write_text("u1 1 2 3\nu2 2 3 1\n")
    done = run_gpu_bench("--device", "cpu", "--data", str(data), "--artifacts", str(tmp_path / "none"))
    assert done.returncode == 2 and "--artifacts" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "training:" not in done.stderr
