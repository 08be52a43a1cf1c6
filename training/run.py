"""One `elcrec train`: settings from a preset and flags, the run's directory, training (one process or several
under torchrun), evaluation and export. The CLI parses the flags and calls these; errors are ValueErrors and
OSErrors whose messages say what is wrong."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elcrec.model.artifact import Store
from elcrec.model.catalog import Catalog
from elcrec.model.config import ModelConfig
from elcrec.model.device import describe_device
from elcrec.training import distributed
from elcrec.training.config import (
    NO_PRESET,
    NO_PRESET_RANKING,
    SETTLE_EPOCHS,
    TrainConfig,
    check_compatible,
    preset_settings,
)
from elcrec.training.data import Interactions
from elcrec.training.export import export_model, full_metrics
from elcrec.training.intent_count import describe_record
from elcrec.training.trainer import Trainer


@dataclass(frozen=True)
class Settings:
    model: ModelConfig
    train: TrainConfig


def base_settings(
    preset: str | None, improved: bool, improved_intents: bool, intent_loss: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model, training) settings of the preset, with --improved or --improved-intents on top; without one, those of
    a run without a preset (NO_PRESET: the balanced intent loss), or only its ranking settings where `intent_loss`
    (the flag) chose ELCM."""
    if preset is not None:
        return preset_settings(preset, improved, improved_intents)
    if improved or improved_intents:
        flag = "--improved" if improved else "--improved-intents"
        raise ValueError(f"{flag} needs --preset: the improved settings are chosen per data set")
    if intent_loss == "elcm":
        return {}, dict(NO_PRESET_RANKING)
    return dict(NO_PRESET[0]), dict(NO_PRESET[1])


def resolve_settings(
    n_items: int, base: tuple[dict[str, Any], dict[str, Any]], model_flags: dict[str, Any], train_flags: dict[str, Any]
) -> Settings:
    """The base settings (base_settings), then every flag that was given (not None). model_flags may hold
    `dropout`, which sets both dropouts, and must hold `pooling`."""
    model_kw, train_kw = dict(base[0]), dict(base[1])
    flags = {k: v for k, v in model_flags.items() if v is not None}
    dropout = flags.pop("dropout", None)
    model_kw.update(flags)
    if dropout is not None:
        model_kw["dropout"] = model_kw["attn_dropout"] = dropout
    train_kw.update({k: v for k, v in train_flags.items() if v is not None})
    if train_flags.get("label_smoothing") is None and train_kw.get("rec_loss") != "softmax":
        train_kw.pop("label_smoothing", None)  # a preset smooths its softmax; a loss chosen instead takes none
    if train_kw.get("intent_loss") == "balanced":
        train_kw.setdefault("intent_settle", SETTLE_EPOCHS)
    train_kw["bucket"] = model_kw["pooling"] == "real"
    try:
        mcfg = ModelConfig(n_items=n_items, **model_kw)
        tcfg = TrainConfig(**train_kw)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    check_compatible(mcfg, tcfg)
    return Settings(mcfg, tcfg)


def run_dir_for(store: Path, data_path: Path, data: Interactions, settings: Settings) -> Path:
    """STORE/runs/<data>-<hash of the data and the settings>. Named without the stopping rules (epochs, patience):
    the same command with other ones resumes the run; runs started before that rule keep their old names."""

    def name(train_settings: dict[str, Any]) -> str:
        blob = json.dumps({"data": data.fingerprint, "model": settings.model.to_dict(), "train": train_settings},
                          sort_keys=True)
        return f"{data_path.stem}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    run = Store(store).run(name(settings.train.trajectory()))
    legacy = Store(store).run(name(settings.train.to_dict()))
    return legacy if not run.exists() and legacy.exists() else run


def train_and_export(
    store: Path, data_path: Path, data: Interactions, settings: Settings, run: Path, device: str,
    origin: dict[str, Any], log: Callable[[str], None], progress: bool, fresh: bool = False,
    index_spec: str | None = None,
    catalog: Catalog | None = None,
) -> dict[str, Any] | None:
    """Train (resuming `run` unless `fresh`), evaluate on valid and test, export a new version and write
    run/result.json. Started by torchrun, trains data-parallel; rank 0 alone evaluates and exports and gets the
    result, the other ranks None."""
    dist, dev = distributed.start(device)  # a single process unless torchrun started this one
    if fresh and run.exists() and dist.is_main:
        shutil.rmtree(run)
    dist.barrier()  # no rank reads a checkpoint that --fresh removes
    if dist.is_main:
        where = f"{dist.world_size} processes ({dev.split(':')[0]})" if dist.enabled else dev
        log(f"training on {data_path} ({data.n_users} users, {data.n_items} items) on {where}; run dir {run}")
        counted = describe_record(origin.get("intent_count"))
        if counted:
            log(f"{counted}; intent loss {settings.train.intent_loss}")
    trainer = Trainer(settings.model, settings.train, data, run, dev, log=log, progress=progress, dist=dist)
    model = trainer.fit()
    if not dist.is_main:
        return None
    metrics = full_metrics(model, data, dev)
    origin = {**origin, "device": describe_device(dev), "train_config": settings.train.to_dict(), **trainer.summary()}
    try:
        version_dir = export_model(store, model, data, origin, metrics, device=dev, index_spec=index_spec,
                                   catalog=catalog)
    except OSError as exc:  # e.g. a full disk: write_version left no partial version, CURRENT is unchanged
        raise OSError(f"cannot write a new version to {store} (nothing was published): {exc}") from exc
    health = Store(store).manifest(version_dir.name).info.intent_health
    result = {"version": version_dir.name, "metrics": metrics, **origin, "intent_health": health}
    (run / Store.RUN_RESULT).write_text(json.dumps(result, indent=2))
    return result
