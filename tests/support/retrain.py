"""Helpers for the retraining tests (fixtures live in conftest.py): a tiny trained store, a throw-away
redis-server, events written the way the service writes them, and `elcrec retrain` runs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from elcrec.model.config import ModelConfig
from elcrec.model.events import EVENTS_STREAM, WATERMARK_KEY
from elcrec.training.config import TrainConfig
from elcrec.training.data import Interactions, write_interactions
from elcrec.training.export import export_model
from elcrec.training.synthetic import SyntheticSpec, generate
from elcrec.training.trainer import Trainer
from tests.support import service as support
from tests.support.service import REDIS_SERVER, RedisServer, free_port, wait_for  # noqa: F401 (re-exported)

ELCREC_CLI = Path(sys.executable).parent / "elcrec"

N_ITEMS = 60


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without ELCREC_* settings, one thread per process (the CI box is shared)."""
    return support.clean_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)


def write_base(path: Path, users: int = 300, items: int = N_ITEMS, intents: int = 3) -> Interactions:
    """`elcrec data synthetic --users 300 --items 60 --intents 3` through its Python API."""
    data, _ = generate(SyntheticSpec(n_users=users, n_items=items, n_intents=intents, seed=0))
    write_interactions(data, path)
    return data


def train_store(data: Interactions, store: Path, model: dict[str, Any] | None = None, train: dict[str, Any] | None = None) -> Path:
    """What `elcrec train --epochs 2 --layers 1 --intents 3 --hidden 16` does (pooling real, bucketed), with
    further model and training settings if given."""
    mcfg = ModelConfig(n_items=data.n_items, d=16, n_layers=1, n_intents=3, pooling="real", **(model or {}))
    tcfg = TrainConfig(epochs=2, bucket=True, **(train or {}))
    trainer = Trainer(mcfg, tcfg, data, None, "cpu", log=lambda _: None, progress=False)
    fitted = trainer.fit()
    origin = {"kind": "trained", "preset": None, "train_config": tcfg.to_dict(), **trainer.summary()}
    return export_model(store, fitted, data, origin)


def add_events(url: str, events: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """XADD events in the service's format (user, JSON array of external item ids); -> their stream ids."""
    with redis.Redis.from_url(url, decode_responses=True) as r:
        return [
            str(r.xadd(EVENTS_STREAM, {"user": u, "items": json.dumps(list(items))})) for u, items in events
        ]


def watermark(url: str) -> str | None:
    with redis.Redis.from_url(url, decode_responses=True) as r:
        value = r.get(WATERMARK_KEY)
        return None if value is None else str(value)


def run_cli(args: Sequence[str], timeout: float = 120, **popen: Any) -> tuple[int, dict[str, Any], str]:
    """`elcrec retrain ARGS` as a process -> (exit code, JSON summary from stdout, stderr)."""
    done = subprocess.run(
        [str(ELCREC_CLI), "retrain", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        **popen,
    )
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"stdout is not one JSON object:\n{done.stdout}\nstderr:\n{done.stderr}"
        ) from None
    return done.returncode, summary, done.stderr


def store_listing(store: Path) -> list[str]:
    """Every path under the store except the lock file, for 'nothing changed' comparisons."""
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.name != ".retrain.lock")
