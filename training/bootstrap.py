"""A store that can serve from the first minute: `elcrec bootstrap` (the compose stack's init service and
`make run`). A store that already has a CURRENT version is left as it is; otherwise it gets the operator's model
from a seed directory, or else a small demo model trained on synthetic data. The base data file that
`elcrec retrain --data` starts from is written beside it, so that the retraining job works on the first events.

Seed directory (all optional):
    model/      a store (CURRENT + versions) or one version directory: its current version is copied in
    base.txt    the interaction file that model was trained on (needed by retraining until it has merged data)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from elcrec.model.artifact import ArtifactError, Store, load_artifact, resolve

# The demo: small enough to train in about a minute on one core, large enough that its intents and
# recommendations show the planted structure (8 planted intents over 400 items).
DEMO_DATA = {"n_users": 2000, "n_items": 400, "n_intents": 8, "seed": 0}
DEMO_MODEL = {"n_layers": 1, "n_intents": 8, "d": 32, "dropout": 0.1, "pooling": "real"}
DEMO_TRAIN = {"epochs": 10, "lr": 0.003, "batch_size": 64, "trade_off": 0.1, "prototype": "shift"}


class BootstrapError(Exception):
    pass


@dataclass(frozen=True)
class Outcome:
    action: str  # "kept" | "seeded" | "demo"
    version: str
    data: Path | None

    def describe(self, store: Path) -> str:
        what = {"kept": "already serves", "seeded": "serves the seed model", "demo": "serves a demo model"}[self.action]
        data = f"; base data {self.data}" if self.data else ""
        return f"{store} {what}: {self.version}{data}"


def bootstrap(store: Path, data_out: Path | None, seed: Path | None, log: Callable[[str], None] = print) -> Outcome:
    """Make `store` servable (see the module docstring). Raises BootstrapError naming what is wrong."""
    try:
        kept = Store(store).current()
    except ArtifactError as exc:
        raise BootstrapError(str(exc)) from None
    if kept is not None:
        return Outcome("kept", kept, data_out if data_out and data_out.is_file() else None)
    seed_model = seed / "model" if seed is not None else None
    if seed_model is not None and seed_model.exists():
        version = _copy_seed(seed_model, store)
        data = None
        if data_out is not None and (seed / "base.txt").is_file():  # type: ignore[operator]
            _copy_atomic(seed / "base.txt", data_out)  # type: ignore[operator]
            data = data_out
        elif data_out is not None:
            log(f"warning: {seed} has no base.txt: retraining needs --data with the interactions {version} was "
                f"trained on")
        return Outcome("seeded", version, data)
    return Outcome("demo", _train_demo(store, data_out, log), data_out)


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)


def _copy_seed(seed_model: Path, store: Path) -> str:
    try:
        version_dir = resolve(seed_model)
        load_artifact(version_dir, verify=True)  # a corrupt seed fails here, not in the api's restart loop
    except (ArtifactError, OSError, ValueError, KeyError) as exc:
        raise BootstrapError(f"seed model {seed_model}: {exc}") from None
    try:
        name = Store(store).copy_in(version_dir)
    except (ArtifactError, OSError) as exc:
        raise BootstrapError(f"seed model {seed_model}: cannot copy it into {store}: {exc}") from None
    Store(store).set_current(name)
    return name


def _train_demo(store: Path, data_out: Path | None, log: Callable[[str], None]) -> str:
    from elcrec.training.data import read_interactions, write_interactions
    from elcrec.training.run import resolve_settings, train_and_export
    from elcrec.training.synthetic import SyntheticSpec, generate

    data_path = data_out or Store(store).demo_data
    log(f"no model in {store}: training a small demo model on synthetic data ({data_path})")
    synthetic, _ = generate(SyntheticSpec(**DEMO_DATA))
    data_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = data_path.with_name(f".{data_path.name}.tmp")
    write_interactions(synthetic, tmp)
    tmp.replace(data_path)
    data = read_interactions(data_path)
    settings = resolve_settings(data.n_items, ({}, {}), DEMO_MODEL, DEMO_TRAIN)
    # One thread: this model is too small to gain from more, and OpenMP threads that share a core with another
    # busy process spin-wait for each other, which made an epoch many times slower (README, *The command line*).
    torch.set_num_threads(1)
    origin = {"kind": "trained", "preset": None, "improved": False, "improved_intents": False, "demo": True}
    with tempfile.TemporaryDirectory(prefix="elcrec-demo-run-") as run:  # the checkpoint is not kept
        result = train_and_export(store, data_path, data, settings, Path(run), "cpu", origin, log, progress=False)
    assert result is not None  # one process: rank 0
    return str(result["version"])
