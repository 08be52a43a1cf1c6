"""From a trained (or imported) model to a versioned artifact: metrics, popularity, intent shares."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from elcrec.model.artifact import ManifestInfo, Store, load_artifact
from elcrec.model.catalog import Catalog
from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace
from elcrec.model.official import load_official
from elcrec.training.data import Interactions, Windows, eval_split, read_interactions
from elcrec.training.evaluate import evaluate, pooled_states
from elcrec.training.intent_health import (
    calibrate,
    fitted_centers,
    model_health,
    trained_balanced,
    training_states,
)
from elcrec.training.intent_settle import settle_model

POPULAR_TOP = 100


def item_ids_for(data: Interactions, n_items: int) -> list[str | None]:
    """Row r's external id: an imported data set's own (item_ids.txt); in the authors' files, str(r). Padding and
    mask rows have none."""
    if data.item_ids is None:
        return [None] + [str(i) for i in range(1, n_items + 1)] + [None]
    if len(data.item_ids) != n_items:
        raise ValueError(f"{data.source} names {len(data.item_ids)} items, the model has {n_items}")
    return [None, *data.item_ids, None]


def popular_items(data: Interactions, item_ids: list[str | None], top: int = POPULAR_TOP) -> list[str]:
    """External ids of the most frequent items, most popular first."""
    counts = np.bincount(data.items, minlength=len(item_ids))
    counts[0] = 0
    order = np.argsort(-counts, kind="stable")[:top]
    return [ext for i in order if counts[i] > 0 and (ext := item_ids[int(i)]) is not None]


def intent_calibration(
    model: ELCRec, data: Interactions, origin: dict[str, Any], device: str = "cpu"
) -> tuple[IntentSpace, dict[str, Any]]:
    """The model's intents with the calibration fitted on the training users (training/intent_health.py
    calibrate), and what the manifest says of it."""
    states = training_states(model, data, device)
    balance = trained_balanced(origin)
    space = calibrate(states, model.intent_centers.detach().float().cpu(), balance)
    return space, {"fitted_on": "the users' sequences but their last two items", "users": len(states),
                   "balancing_bias": balance}


def intent_summary(
    model: ELCRec, data: Interactions, intents: IntentSpace, device: str = "cpu"
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Over every user's whole (last T items) history: the share of the users in each intent, and the mean of their
    normalised pooled states, which the service subtracts from an intent's description to list the items that set
    it apart (model.intents.characteristic_scores)."""
    inputs = Windows(data.items, data.offsets[:-1], data.offsets[1:], model.cfg.max_len)
    pooled = pooled_states(model, inputs, device=device)
    counts = torch.bincount(intents.assign(pooled.float()), minlength=model.cfg.n_intents).double()
    mean = F.normalize(pooled.float(), dim=-1).mean(0)
    return tuple((counts / counts.sum()).tolist()), tuple(round(v, 6) for v in mean.tolist())


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
    catalog: Catalog | None = None,
) -> Path:
    """Write the model as a new version; with `index_spec` (FAISS index-factory string) the version stores
    that index over its items, which a service configured with the same ELCREC_INDEX uses without a rebuild; with
    `catalog`, that item catalog."""
    ids = item_ids if item_ids is not None else item_ids_for(data, model.cfg.n_items)
    info, intents = version_info(model, data, ids, origin, metrics, device)
    return Store(Path(store)).write_version(model, ids, info, make_current, index_spec, intents, catalog)


def version_info(
    model: ELCRec, data: Interactions, item_ids: list[str | None], origin: dict[str, Any],
    metrics: dict[str, Any] | None = None, device: str = "cpu",
) -> tuple[ManifestInfo, IntentSpace]:
    """What a version's manifest says of the model beside its weights: where it came from, the data, metrics,
    popular items and its intents (shares, the mean user state, the calibration and their health on the test
    users); and the calibrated intents, which write_version stores."""
    intents, calibration = intent_calibration(model, data, origin, device)
    shares, mean_state = intent_summary(model, data, intents, device)
    info = ManifestInfo(
        origin=origin,
        data=data_info(data),
        metrics=metrics if metrics is not None else full_metrics(model, data, device),
        popular_items=tuple(popular_items(data, item_ids)),
        intent_shares=shares,
        intent_mean_state=mean_state,
        intent_calibration=calibration,
        intent_health=model_health(model, data, "test", device, intents).to_dict(),
        pooling=model.cfg.pooling,
        software={"torch": torch.__version__, "python": platform.python_version()},
    )
    return info, intents


def import_checkpoint(
    checkpoint: str | Path, data_path: str | Path, store: str | Path, n_heads: int = 2, with_metrics: bool = True
) -> str:
    model = load_official(checkpoint, n_heads)
    data = read_interactions(data_path, n_items=model.cfg.n_items)
    metrics: dict[str, Any] | None = None if with_metrics else {}
    origin = {"kind": "imported", "checkpoint": Path(checkpoint).name}
    return export_model(store, model, data, origin, metrics).name


def fit_intents(store: str | Path, data_path: str | Path, k: int | None = None, seed: int = 1, device: str = "cpu") -> str:
    """Publish a new version of the store's CURRENT model whose intent centers are a spherical k-means of the pooled
    states of the users' training sequences (training/intent_health.py fitted_centers): intents fitted after
    training, for any model, imported checkpoints included. The encoder and item table are kept as they are, so
    the ranking metrics are the parent's."""
    import dataclasses

    from elcrec.training.intent_ids import LiveIntents, keep_intent_ids

    art = load_artifact(store, device)
    data = read_interactions(data_path, n_items=art.config.n_items)
    k = k or art.config.n_intents
    centers = fitted_centers(art.model, data, k, seed, device)
    cfg = dataclasses.replace(art.config, n_intents=k)
    model = ELCRec(cfg)
    weights = {name: w for name, w in art.model.state_dict().items() if name != "intent_centers"}
    model.load_state_dict({**weights, "intent_centers": centers}, strict=True)
    model.eval()
    # the parent's ids where K is the same; fitted intents are calibrated without a balancing bias
    ids = keep_intent_ids(model, LiveIntents(art.model, art.intents, art.config.n_items, art.version), data, False, device)
    origin = {
        "kind": "intents-fit", "parent": art.version, "k": k, "seed": seed,
        "centers": "spherical k-means of the pooled states of the users' training sequences",
        "intent_ids": ids, "parent_origin": art.info.origin or None,
    }
    metrics = art.info.metrics or None
    return export_model(store, model, data, origin, metrics, item_ids=art.item_ids, device=device,
                        catalog=art.read_catalog()).name


def calibrate_intents(
    store: str | Path, data_path: str | Path, device: str = "cpu", settle: int = 0, settle_temperature: float | None = None
) -> str:
    """Publish the store's CURRENT model again with its intent calibration fitted on `data_path`'s training users
    (`elcrec intents calibrate`): the same weights and metrics, for versions exported before the calibration. With
    `settle`, balanced-trained centers are first settled for that many epochs and kept where at least as good on the
    validation users (training/intent_settle.py settle_model), as training does now: for versions trained
    before it did. `settle_temperature` is that settling's (default: the version's training's, as
    TrainConfig.settle_temperature)."""
    if settle_temperature is not None and settle_temperature <= 0:
        raise ValueError(f"the settling temperature must be > 0, got {settle_temperature}")
    if settle_temperature is not None and not settle:
        raise ValueError("a settling temperature needs a number of settling epochs (--settle)")
    art = load_artifact(store, device)
    data = read_interactions(data_path, n_items=art.config.n_items)
    origin: dict[str, Any] = {"kind": "calibrated", "parent": art.version, "parent_origin": art.info.origin or None}
    model = art.model
    if settle:
        if not trained_balanced(art.info.origin):
            raise ValueError(f"settling continues the balanced intent loss, and {art.version} was not trained with it "
                             "(`elcrec intents fit` fits intents to any model)")
        seed = int((art.info.train_config or {}).get("seed", 1))
        trained_at = (art.info.train_config or {}).get("intent_settle_temperature") or art.info.intent_temperature
        temperature = settle_temperature if settle_temperature is not None else float(trained_at)
        got = settle_model(model, data, eval_split(data, model.cfg.max_len, "valid"), settle, temperature, seed, device)
        with torch.no_grad():  # the artifact was loaded for this version alone
            model.intent_centers.copy_(got.centers.to(model.intent_centers.device))
        origin["settled"] = {**got.to_dict(settle), "temperature": temperature, "seed": seed}
    metrics = art.info.metrics or None
    return export_model(store, model, data, origin, metrics, item_ids=art.item_ids, device=device,
                        catalog=art.read_catalog()).name


def publish_catalog(store: str | Path, catalog: Catalog) -> str:
    """Publish the store's CURRENT model again with `catalog` (`elcrec catalog set`): the same weights, item ids,
    intents, calibration, metrics and origin, no retraining; its parent is the old version, and it becomes
    CURRENT. Raises ArtifactError where the catalog knows none of the model's items."""
    art = load_artifact(store)
    intents = art.intents if art.calibration else None
    # the model's description carried over as it is (ManifestInfo keeps the entries this release does not know)
    return Store(Path(store)).write_version(art.model, art.item_ids, art.info, True, art.index_spec, intents,
                                            catalog).name
