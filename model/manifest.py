"""The manifest's optional fields, typed once: what readers use besides the checked core (format, files, model
config, version), read when a version is loaded. Versions written by older releases lack some fields and
imported checkpoints others; a missing or malformed field becomes None (or the documented default) here, in one
place, instead of each reader guessing its type. The raw document stays on the Artifact for the API to show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elcrec.model.intents import DEFAULT_TEMPERATURE


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if isinstance(value, list) and len(value) == n and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                            for v in value):
        return tuple(float(v) for v in value)
    return None


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _train_config(origin: dict[str, Any]) -> dict[str, Any] | None:
    """The training settings of a version's model: its own, or where it was made from another version, the nearest
    ancestor's (origin.parent_origin)."""
    node: dict[str, Any] | None = origin
    for _ in range(16):  # a chain of calibrations; the bound only guards against a malformed manifest
        if node is None:
            return None
        if (train := _dict(node.get("train_config"))) is not None:
            return train
        node = _dict(node.get("parent_origin"))
    return None


@dataclass(frozen=True)
class ManifestInfo:
    origin: dict[str, Any]  # how the version came to be ({} when not recorded)
    # origin.train_config: the TrainConfig it was trained with; for a version made from another (intents fitted or
    # calibrated again) its parent's, through origin.parent_origin
    train_config: dict[str, Any] | None
    metrics: dict[str, Any] | None  # valid/test figures at export
    data: dict[str, Any]  # the data it was trained on ({} when not recorded)
    popular_items: tuple[str, ...]  # external ids, most popular first (the no-history fallback)
    intent_shares: tuple[float, ...] | None  # share of training users per intent; None when missing or another K
    intent_mean_state: tuple[float, ...] | None  # mean normalised user state (characteristic items); None: missing
    intent_health: dict[str, Any] | None
    intent_temperature: float  # train_config.intent_temperature, else DEFAULT_TEMPERATURE
    # the stored catalog: file, fields, items, source, known_items (model/catalog.py); None: the version has none
    catalog: dict[str, Any] | None = None

    @classmethod
    def read(cls, manifest: dict[str, Any], n_intents: int, d: int) -> ManifestInfo:
        origin = _dict(manifest.get("origin")) or {}
        train = _train_config(origin)
        t = train.get("intent_temperature") if train is not None else None
        popular = manifest.get("popular_items")
        return cls(
            origin=origin,
            train_config=train,
            metrics=_dict(manifest.get("metrics")),
            data=_dict(manifest.get("data")) or {},
            popular_items=tuple(i for i in popular if isinstance(i, str)) if isinstance(popular, list) else (),
            intent_shares=_floats(manifest.get("intent_shares"), n_intents),
            intent_mean_state=_floats(manifest.get("intent_mean_state"), d),
            intent_health=_dict(manifest.get("intent_health")),
            intent_temperature=float(t) if isinstance(t, int | float) and not isinstance(t, bool) and t > 0
            else DEFAULT_TEMPERATURE,
            catalog=_dict(manifest.get("catalog")),
        )
