"""A version's manifest.json, typed both ways: `Manifest` is what Store.write_version writes (training/export.py
builds its `ManifestInfo`) and what every reader gets back (Store.manifest, Artifact.manifest); nobody reads the raw
document.

The core (format, version, model config, checksums) must be right: `Manifest.read` refuses a document without it
(ManifestError). The rest describes the model and is read leniently: versions written by older releases lack some
fields and imported checkpoints others, so a missing or malformed field becomes None (or the documented default)
here, in one place, instead of each reader guessing its type. Entries this release does not know are kept
(`ManifestInfo.extra`) and written again as they were when a version is published anew from another.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from elcrec.model.config import ModelConfig
from elcrec.model.intents import DEFAULT_TEMPERATURE

FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A manifest without a usable core; the message says what is wrong."""


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if isinstance(value, list) and len(value) == n and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                            for v in value):
        return tuple(float(v) for v in value)
    return None


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


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
    """What a version says of its model besides the weights (training/export.py version_info)."""

    origin: dict[str, Any] = field(default_factory=dict)  # how the version came to be ({} when not recorded)
    data: dict[str, Any] = field(default_factory=dict)  # the data it was trained on ({} when not recorded)
    metrics: dict[str, Any] | None = None  # valid/test figures at export
    popular_items: tuple[str, ...] = ()  # external ids, most popular first (the no-history fallback)
    intent_shares: tuple[float, ...] | None = None  # share of training users per intent; None when missing or another K
    intent_mean_state: tuple[float, ...] | None = None  # mean normalised user state (characteristic items)
    # how the intent calibration was fitted; Store.write_version adds the file and what it holds (intents.safetensors)
    intent_calibration: dict[str, Any] | None = None
    intent_health: dict[str, Any] | None = None
    pooling: str | None = None
    software: dict[str, Any] | None = None  # versions of torch and python that wrote it
    extra: dict[str, Any] = field(default_factory=dict)  # entries this release does not know, kept as they were

    @property
    def train_config(self) -> dict[str, Any] | None:
        """origin.train_config: the TrainConfig it was trained with; for a version made from another (intents fitted
        or calibrated again) its parent's, through origin.parent_origin."""
        return _train_config(self.origin)

    @property
    def intent_temperature(self) -> float:
        """train_config.intent_temperature, else DEFAULT_TEMPERATURE."""
        t = (self.train_config or {}).get("intent_temperature")
        return float(t) if isinstance(t, int | float) and not isinstance(t, bool) and t > 0 else DEFAULT_TEMPERATURE

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "origin": self.origin, "data": self.data,
                               "popular_items": list(self.popular_items)}
        for name, value in (("metrics", self.metrics), ("intent_calibration", self.intent_calibration),
                            ("intent_health", self.intent_health), ("pooling", self.pooling),
                            ("software", self.software)):
            if value is not None:
                out[name] = value
        for name, floats in (("intent_shares", self.intent_shares), ("intent_mean_state", self.intent_mean_state)):
            if floats is not None:
                out[name] = list(floats)
        return out

    @classmethod
    def read(cls, manifest: dict[str, Any], n_intents: int, d: int) -> ManifestInfo:
        popular = manifest.get("popular_items")
        known = {f.name for f in dataclasses.fields(cls)} | CORE_KEYS
        return cls(
            origin=_dict(manifest.get("origin")) or {},
            data=_dict(manifest.get("data")) or {},
            metrics=_dict(manifest.get("metrics")),
            popular_items=tuple(i for i in popular if isinstance(i, str)) if isinstance(popular, list) else (),
            intent_shares=_floats(manifest.get("intent_shares"), n_intents),
            intent_mean_state=_floats(manifest.get("intent_mean_state"), d),
            intent_calibration=_dict(manifest.get("intent_calibration")),
            intent_health=_dict(manifest.get("intent_health")),
            pooling=_str(manifest.get("pooling")),
            software=_dict(manifest.get("software")),
            extra={k: v for k, v in manifest.items() if k not in known and k != "extra"},
        )


@dataclass(frozen=True)
class Manifest:
    """The whole document: the core Store.write_version sets, the entries of the optional files it stores, and
    `info`."""

    version: str
    model_config: ModelConfig
    files: dict[str, str]  # file name -> sha256
    info: ManifestInfo
    created_at: str | None = None
    parent: str | None = None  # the version CURRENT named when this one was written
    index: dict[str, Any] | None = None  # index.faiss: {"spec": factory string, "file"}; None: none stored
    # catalog.jsonl: file, fields, items, source, known_items (model/catalog.py); None: the version has none
    catalog: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION

    @property
    def n_items(self) -> int:
        return self.model_config.n_items

    @property
    def n_intents(self) -> int:
        return self.model_config.n_intents

    def to_json(self) -> dict[str, Any]:
        out = {
            **self.info.to_json(),
            "format_version": self.format_version,
            "version": self.version,
            "created_at": self.created_at,
            "parent": self.parent,
            "model_config": self.model_config.to_dict(),
            "n_items": self.n_items,
            "n_intents": self.n_intents,
            "files": self.files,
        }
        if self.index is not None:
            out["index"] = self.index
        if self.catalog is not None:
            out["catalog"] = self.catalog
        return out

    @classmethod
    def read(cls, raw: Any, where: str, version: str) -> Manifest:
        """The document `raw` (parsed JSON) of `where` (for messages); `version`: its name where it names none."""
        if not isinstance(raw, dict):
            raise ManifestError(f"{where} is not a JSON object")
        if raw.get("format_version") != FORMAT_VERSION:
            raise ManifestError(f"{where} has format_version {raw.get('format_version')!r}; this elcrec reads "
                                f"{FORMAT_VERSION}")
        files = raw.get("files")
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ManifestError(f"{where} has no checksums of its files (\"files\": {{name: sha256}})")
        try:
            cfg = ModelConfig.from_dict(raw["model_config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where} has an invalid model_config: {exc}") from exc
        return cls(
            version=_str(raw.get("version")) or version,
            model_config=cfg,
            files=dict(files),
            info=ManifestInfo.read(raw, cfg.n_intents, cfg.d),
            created_at=_str(raw.get("created_at")),
            parent=_str(raw.get("parent")),
            index=_dict(raw.get("index")),
            catalog=_dict(raw.get("catalog")),
            format_version=FORMAT_VERSION,
        )


# The entries Manifest writes itself (Store.write_version sets them); the rest are ManifestInfo's.
CORE_KEYS = frozenset({f.name for f in dataclasses.fields(Manifest)} - {"info"} | {"n_items", "n_intents"})
