"""Data-parallel training under torchrun (2 CPU processes, gloo) against one process.

One torchrun launch of this module serves every test (a launch costs seconds of imports): one-step
gradients against one process, centers on every rank, a straight run, a run killed after its first epoch
and `elcrec train` resuming it from its checkpoint, with fresh trainers and the same process group.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from elcrec.cli import app
from elcrec.model.config import ModelConfig
from elcrec.training import distributed
from elcrec.training.config import TrainConfig
from elcrec.training.data import Interactions, read_interactions, write_interactions
from elcrec.training.distributed import Dist
from elcrec.training.synthetic import SyntheticSpec, generate
from elcrec.training.trainer import CHECKPOINT, LOG, Trainer

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
# 301 users, batch 64: the last global batch splits 22/23. Dropout 0: dropout masks are per rank.
SPEC = SyntheticSpec(n_users=301, n_items=60, n_intents=3, seed=0)
MODEL = {"n_layers": 1, "n_intents": 4, "d": 16, "dropout": 0.0, "attn_dropout": 0.0, "pooling": "real"}
TRAIN = {"epochs": 2, "batch_size": 64, "bucket": True}
CLI_TRAIN = ["--epochs", "2", "--layers", "1", "--intents", "4", "--hidden", "16", "--dropout", "0", "--intent-loss", "elcm",
             "--rec-loss", "bce", "--batch-size", "64", "--no-progress"]  # the same settings as MODEL and TRAIN
# One step on a given global batch: (model overrides, train overrides, batch size).
GRAD_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "fast mode, even batch": ({}, {}, 64),
    "fast mode, uneven batch": ({}, {"prototype": "shift"}, 5),
    "fast mode, one row (rank 0 has none)": ({}, {}, 1),
    "reference pooling, softmax, uneven batch": ({"pooling": "all"}, {"bucket": False, "rec_loss": "softmax"}, 7),
}


def configs(data: Interactions, model: dict[str, Any] | None = None, train: dict[str, Any] | None = None):
    return ModelConfig(n_items=data.n_items, **{**MODEL, **(model or {})}), TrainConfig(**{**TRAIN, **(train or {})})


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*TORCHRUN, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / CHECKPOINT, weights_only=True)["model"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, dict[str, Any]]:
    """-> (data file, work dir, the workers' report)."""
    work = tmp_path_factory.mktemp("ddp")
    data_file = work / "syn.txt"
    write_interactions(generate(SPEC)[0], data_file)
    worker = torchrun("-m", "tests.training.test_distributed", str(data_file), str(work))
    assert worker.returncode == 0, worker.stderr[-4000:]
    return data_file, work, json.loads((work / "report.json").read_text())


@pytest.fixture(scope="module")
def report(runs) -> dict[str, Any]:
    return runs[2]


def test_shards_are_contiguous_and_cover_the_global_batch():
    for world in (1, 2, 3, 8):
        for n in (1, 2, 5, 64, 301):
            parts = [Dist(r, world).bounds(n) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
            assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1


def test_two_processes_train_like_one_with_the_same_global_batch(runs):
    data_file, work, _ = runs
    data = read_interactions(data_file)
    one = Trainer(*configs(data), data, log=lambda _: None)
    for _ in range(2):
        one.run_epoch()
    two = weights(work / "straight")
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(two[k], v, atol=1e-4, rtol=0, msg=k)
    logged = [json.loads(line) for line in (work / "straight" / LOG).read_text().splitlines()]
    assert len(logged) == 2  # rank 0 alone writes the log
    for mine, theirs in zip(one.state.history, logged, strict=True):
        for key in ("loss", "rec", "inst", "intent", "elcm"):
            assert theirs[key] == pytest.approx(mine[key], abs=1e-4), key
        assert theirs["valid"]["NDCG@20"] == pytest.approx(mine["valid"]["NDCG@20"], abs=1e-4)


@pytest.mark.parametrize("case", GRAD_CASES)
def test_one_step_gradients_match_one_process(report, case):
    gap = report["grads"][case]
    assert gap["relative_grad_gap"] < 1e-5, gap
    assert gap["loss_gap"] < 1e-5, gap


def test_intent_centers_and_weights_are_the_same_on_every_rank(report):
    assert report["centers_after_init_equal"]
    assert report["weights_after_training_equal"]


def test_an_interrupted_run_resumes_under_torchrun_to_the_same_result(runs):
    _, work, report = runs
    out = report["cli_stdout"][0]
    assert report["cli_exit"] == [0, 0]
    assert "resumed from" in out and "after epoch 1" in out
    assert "epoch   1" not in out and out.count("epoch   2") == 1
    resumed, straight = weights(work / "killed"), weights(work / "straight")
    for k, v in straight.items():
        torch.testing.assert_close(resumed[k], v, atol=1e-6, rtol=0, msg=k)


def test_only_rank_zero_prints_and_exports_one_version(runs):
    _, work, report = runs
    main, other = report["cli_stdout"]
    assert other == ""
    assert sorted(p.name for p in (work / "store").iterdir()) == ["CURRENT", "v0001"]
    assert main.count("exported") == 1 and "on 2 processes (cpu)" in main
    assert json.loads((work / "killed" / "result.json").read_text())["version"] == "v0001"


def test_dropout_streams_are_per_rank_and_resume_exactly(report):
    assert report["rank_rng_states_differ"]
    assert report["dropout_resume_gap"] == 0.0


# -- the torchrun worker --------------------------------------------------------------------------


def _quiet(_: str) -> None:
    pass


def _grad_gap(dist: Dist, data: Interactions, model: dict[str, Any], train: dict[str, Any], size: int) -> dict[str, float]:
    mcfg, tcfg = configs(data, model, train)
    idx = np.random.default_rng(7).permutation(data.n_users)[:size]
    stats, grads = [], []
    for d in (Dist(), dist):  # one process (on every rank), then both ranks together
        trainer = Trainer(mcfg, tcfg, data, log=_quiet, dist=d)
        trainer.init_centers()
        stats.append(trainer.step(idx))
        grads.append({k: p.grad.clone() for k, p in trainer.model.named_parameters()})
    # Relative to the largest gradient entry: some entries are zero up to rounding (the key bias).
    gap = max(float((grads[1][k] - g).abs().max()) for k, g in grads[0].items())
    scale = max(float(g.abs().max()) for g in grads[0].values())
    return {"relative_grad_gap": gap / scale, "loss_gap": max(abs(stats[0][k] - stats[1][k]) for k in stats[0])}


def _same_everywhere(dist: Dist, tensors: dict[str, torch.Tensor]) -> bool:
    mine = {k: v.detach().cpu().numpy().tobytes() for k, v in tensors.items()}
    return all(other == mine for other in dist.all_gather_object(mine))


def _worker(data_file: Path, work: Path) -> None:
    dist, device = distributed.start("cpu")
    assert dist.world_size == 2, "run under torchrun --nproc-per-node 2"
    data = read_interactions(data_file)
    report: dict[str, Any] = {"grads": {name: _grad_gap(dist, data, *case) for name, case in GRAD_CASES.items()}}

    mcfg, tcfg = configs(data)
    straight = Trainer(mcfg, tcfg, data, work / "straight", device, log=_quiet, dist=dist)
    straight.init_centers()
    report["centers_after_init_equal"] = _same_everywhere(dist, {"c": straight.model.intent_centers})
    straight.fit()
    report["weights_after_training_equal"] = _same_everywhere(dist, dict(straight.model.state_dict()))
    killed = Trainer(mcfg, tcfg, data, work / "killed", device, log=_quiet, dist=dist)
    killed.run_epoch()
    killed.save_checkpoint()  # as if killed after the first epoch
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = app(["train", "--data", str(data_file), "--out", str(work / "store"), "--run-dir", str(work / "killed"),
                    *CLI_TRAIN], standalone_mode=False)
    report["cli_exit"] = dist.all_gather_object(code or 0)
    report["cli_stdout"] = dist.all_gather_object(out.getvalue())

    # With dropout every rank draws its own masks, and a resumed run draws what the straight one did.
    mcfg, tcfg = configs(data, {"dropout": 0.2, "attn_dropout": 0.2})
    a = Trainer(mcfg, tcfg, data, work / "dropout-a", device, log=_quiet, dist=dist)
    report["rank_rng_states_differ"] = len({s.numpy().tobytes() for s in dist.all_gather_object(torch.get_rng_state())}) == 2
    a.fit()
    b = Trainer(mcfg, tcfg, data, work / "dropout-b", device, log=_quiet, dist=dist)
    b.run_epoch()
    b.save_checkpoint()
    b = Trainer(mcfg, tcfg, data, work / "dropout-b", device, log=_quiet, dist=dist)
    b.fit()
    report["dropout_resume_gap"] = max(float((b.model.state_dict()[k] - v).abs().max()) for k, v in a.model.state_dict().items())
    if dist.is_main:
        (work / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
