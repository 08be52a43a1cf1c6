"""From a trained (or imported) model to a versioned artifact: metrics, popularity, intent shares."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.artifact import write_version
from model.encoder import ELCRec
from model.intents import assign_intents
from model.official import load_official
from training.data import Interactions, left_pad, read_interactions
from training.evaluate import evaluate, pooled_states

POPULAR_TOP = 100


def item_ids_for(data: Interactions, n_items: int) -> list[str | None]:
    """ICLRec files: the external id of row r is str(r); padding and mask rows have none."""
    return [None] + [str(i) for i in range(1, n_items + 1)] + [None]


def popular_items(data: Interactions, item_ids: list[str | None], top: int = POPULAR_TOP) -> list[str]:
    """External ids of the most frequent items, most popular first."""
    counts = np.bincount(data.items, minlength=len(item_ids))
    counts[0] = 0
    order = np.argsort(-counts, kind="stable")[:top]
    return [ext for i in order if counts[i] > 0 and (ext := item_ids[int(i)]) is not None]


def intent_shares(model: ELCRec, data: Interactions, device: str = "cpu") -> list[float]:
    """Share of users whose whole (last T items) history falls in each intent."""
    inputs = left_pad([data.sequence(u) for u in range(data.n_users)], model.cfg.max_len)
    pooled = pooled_states(model, inputs, device=device)
    _, ids = assign_intents(pooled, model.intent_centers.detach().float().cpu())
    counts = torch.bincount(ids[:, 0], minlength=model.cfg.n_intents).double()
    return (counts / counts.sum()).tolist()


def full_metrics(model: ELCRec, data: Interactions, device: str = "cpu") -> dict[str, Any]:
    return {split: evaluate(model, data, split, ("reference", "strict"), device) for split in ("valid", "test")}


def data_info(data: Interactions) -> dict[str, Any]:
    return {
        "source": Path(data.source).name if data.source else None,
        "sha256": data.fingerprint,
        "users": data.n_users,
        "interactions": int(len(data.items)),
        "max_item": int(data.items.max()),
    }


def export_model(
    store: str | Path,
    model: ELCRec,
    data: Interactions,
    origin: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    item_ids: list[str | None] | None = None,
    device: str = "cpu",
    make_current: bool = True,
    index_spec: str | None = None,
) -> Path:
    """Write the model as a new version; with `index_spec` (FAISS index-factory string) the version stores
    that index over its items, which a service configured with the same ELCREC_INDEX uses without a rebuild."""
    ids = item_ids if item_ids is not None else item_ids_for(data, model.cfg.n_items)
    info = {
        "origin": origin,
        "data": data_info(data),
        "metrics": metrics if metrics is not None else full_metrics(model, data, device),
        "popular_items": popular_items(data, ids),
        "intent_shares": intent_shares(model, data, device),
        "pooling": model.cfg.pooling,
        "software": {"torch": torch.__version__, "python": platform.python_version()},
    }
    return write_version(store, model, ids, info, make_current, index_spec)


def import_checkpoint(
    checkpoint: str | Path, data_path: str | Path, store: str | Path, n_heads: int = 2, with_metrics: bool = True
) -> str:
    model = load_official(checkpoint, n_heads)
    data = read_interactions(data_path, n_items=model.cfg.n_items)
    metrics: dict[str, Any] | None = None if with_metrics else {}
    origin = {"kind": "imported", "checkpoint": Path(checkpoint).name}
    return export_model(store, model, data, origin, metrics).name
