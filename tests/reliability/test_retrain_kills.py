"""The retraining job interrupted at the steps tests/training/retrain does not already cover; nothing half-published and
the next run succeeds, folding every event in once.

Already covered in tests/training/retrain/test_retrain_job.py: killed while training (KeyboardInterrupt, and SIGKILL of a
real `elcrec retrain`), before CURRENT moves, before the watermark moves, stale temporaries of killed writers.
Here: while merging the events, during the quality gate, while writing the weights, between the version and
its merged data, and between the merged data and its sidecar.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import elcrec.model.artifact as artifact
import elcrec.training.retrain as job
from elcrec.model.artifact import Store
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.training.export import export_model
from elcrec.training.retrain import RetrainOptions, retrain
from tests.support.retrain import add_events, watermark, write_base
from tests.support.service import RedisServer

EVENTS = [(f"new-{i}", ["5", f"sku-{i % 2}", "7", str(10 + i)]) for i in range(6)] + [("1", ["sku-0", "3"])]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(base file, store with an untrained v0001 exported from it): the gate is off here, so no training."""
    root = tmp_path_factory.mktemp("retrain-kills")
    data = write_base(root / "base.txt")
    model = ELCRec(ModelConfig(n_items=data.n_items, d=16, n_layers=1, n_intents=3, pooling="real")).eval()
    export_model(root / "store", model, data, {"kind": "trained", "train_config": {"epochs": 1, "bucket": True}})
    return root / "base.txt", root / "store"


def _interrupt(*_: Any, **__: Any) -> Any:
    raise KeyboardInterrupt  # what a Ctrl-C or a SIGTERM-turned-exception does at that point


def _partial_weights(state: dict, path: str) -> None:
    Path(path).write_bytes(b"\x00" * 64)
    raise KeyboardInterrupt


def _second_call_interrupts(real: Callable[..., Any]) -> Callable[..., Any]:
    calls = []

    def patched(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    return patched


STEPS: dict[str, tuple[Any, str, Callable[[], Callable[..., Any]]]] = {
    "merging events": (job, "merge", lambda: _interrupt),
    "quality gate": (job, "compare", lambda: _interrupt),
    "writing the weights": (artifact, "save_file", lambda: _partial_weights),
    "before the merged data": (job, "write_merged", lambda: _interrupt),
    "before the sidecar": (artifact, "write_text_atomic", lambda: _second_call_interrupts(artifact.write_text_atomic)),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_interrupted_at_each_step_publishes_nothing_and_the_next_run_succeeds(
    step: str,
    template: tuple[Path, Path],
    tmp_path: Path,
    own_redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, store = template[0], Path(shutil.copytree(template[1], tmp_path / "store"))
    ids = add_events(own_redis.url, EVENTS)
    opts = RetrainOptions(store, base, own_redis.url, gate_tolerance=1.0, train_overrides={"epochs": 1})
    owner, name, make = STEPS[step]
    monkeypatch.setattr(owner, name, make())
    with pytest.raises(KeyboardInterrupt):
        retrain(opts, log=lambda _: None)
    monkeypatch.undo()

    # Nothing live moved; no temporary left behind; a complete but unused version at most.
    assert Store(store).current() == "v0001" and watermark(own_redis.url) is None
    assert not [p for p in store.rglob(".tmp-*")] and not list(store.glob(".CURRENT.*"))
    leftover = Store(store).versions()
    assert leftover in (["v0001"], ["v0001", "v0002"])
    assert not (store / "data" / "v0002.json").exists()  # no sidecar: that data is never chosen as a base

    summary = retrain(opts, log=lambda _: None)
    assert summary.status == "published" and summary.published == f"v{len(leftover) + 1:04d}"
    assert Store(store).current() == summary.published and watermark(own_redis.url) == ids[-1]
    assert summary.events["used"] == len(EVENTS) and summary.data["base"] == str(base)
