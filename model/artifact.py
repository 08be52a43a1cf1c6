"""Versioned model artifacts: a store directory of immutable versions and a CURRENT pointer.

    STORE/
      CURRENT              name of the live version (written atomically)
      v0001/ manifest.json weights.safetensors items.json [index.faiss] [intents.safetensors] [catalog.jsonl]
      v0002/ ...
      data/vNNNN.txt|json  the merged interactions a retrained version was trained on (training/merged_store.py)
      .retrain.lock        held while a retrain runs
      runs/<run>/          training runs: checkpoint.pt, log.jsonl, result.json (training/run.py, trainer.py)

`Store` below names every one of these paths; the modules that read and write them ask it.

A version is written under a temporary name and renamed into place, so it is never seen half-written.
index.faiss (optional) is a FAISS index over the item rows, built at export for large catalogs so that
the service need not rebuild it; the manifest names its index-factory string and checksums it like the rest.
intents.safetensors (optional) holds the intent calibration fitted at export (model/intents.py IntentSpace): "bias"
(K,) where the centers were trained balanced, and "profiles" (K, d); the manifest's "intent_calibration" says what
it holds and how it was fitted.
catalog.jsonl (optional) is the version's item catalog in its stored form (model/catalog.py): titles and categorical
fields; the manifest's "catalog" entry names the file, its fields, the file it was read from and how many of the
model's items it knows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from elcrec.model.catalog import Catalog, CatalogError, covered, read_stored
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace
from elcrec.model.item_index import build_item_index, item_rows, write_item_index
from elcrec.model.manifest import ManifestInfo

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
ITEMS = "items.json"
INDEX = "index.faiss"
INTENTS = "intents.safetensors"
CATALOG = "catalog.jsonl"
OPTIONAL_FILES = (INDEX, INTENTS, CATALOG)
CURRENT = "CURRENT"
_VERSION_RE = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class Store:
    """The layout of an artifact store (module docstring): the one owner of its path names."""

    root: Path

    DATA_DIR = "data"
    LOCK_FILE = ".retrain.lock"
    RUNS_DIR = "runs"
    # inside a run directory (which --run-dir may also put outside a store)
    RUN_CHECKPOINT = "checkpoint.pt"
    RUN_LOG = "log.jsonl"
    RUN_RESULT = "result.json"

    @property
    def current_file(self) -> Path:
        return self.root / CURRENT

    def version(self, name: str) -> Path:
        return self.root / name

    @property
    def data_dir(self) -> Path:
        return self.root / self.DATA_DIR

    def merged_data(self, version: str) -> tuple[Path, Path]:
        """(interactions, sidecar) of a retrained version's merged data."""
        return self.data_dir / f"{version}.txt", self.data_dir / f"{version}.json"

    @property
    def lock_file(self) -> Path:
        return self.root / self.LOCK_FILE

    @property
    def runs_dir(self) -> Path:
        return self.root / self.RUNS_DIR

    def run(self, name: str) -> Path:
        return self.runs_dir / name


class ArtifactError(Exception):
    """A store or version that cannot be used; the message says what is wrong."""


@dataclass
class Artifact:
    path: Path
    version: str
    manifest: dict[str, Any]
    config: ModelConfig
    model: ELCRec
    item_ids: list[str | None]  # row -> external id; None for padding (row 0) and mask (row N + 1)
    info: ManifestInfo  # the manifest's optional fields, typed (model/manifest.py)
    index_spec: str | None = None  # factory string of the stored index.faiss; None when there is none
    calibration: dict[str, torch.Tensor] | None = None  # intents.safetensors ("bias", "profiles"); None: none stored

    @property
    def index_path(self) -> Path | None:
        return self.path / INDEX if self.index_spec is not None else None

    def read_catalog(self) -> Catalog | None:
        """The stored catalog (checked against its checksum when loaded with verify); None: the version has none."""
        entry = self.info.catalog
        if entry is None:
            return None
        try:
            return read_stored(self.path / CATALOG, list(entry["fields"]), str(entry.get("source", CATALOG)))
        except CatalogError as exc:
            raise ArtifactError(str(exc)) from exc

    @property
    def intents(self) -> IntentSpace:
        """The model's centers read with the stored calibration (none: the nearest center, described by itself)."""
        centers = self.model.intent_centers.detach().float()
        cal = self.calibration or {}
        bias, profiles = cal.get("bias"), cal.get("profiles")
        return IntentSpace(centers, None if bias is None else bias.to(centers.device),
                           None if profiles is None else profiles.to(centers.device))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text_atomic(path: Path, text: str, prefix: str | None = None) -> None:
    """Write via a temporary file in the same folder and rename: readers see the old or the new text."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        save_file(state, str(path))
    except SafetensorError as exc:  # its I/O errors (a full disk) are not OSErrors: make them one
        raise OSError(f"cannot write {path}: {exc}") from exc


def list_versions(store: Path) -> list[str]:
    if not store.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in store.iterdir() if p.is_dir() and (m := _VERSION_RE.match(p.name))]
    return [name for _, name in sorted(found)]


def current_version(store: Path) -> str | None:
    pointer = Store(store).current_file
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    if not _VERSION_RE.match(name):
        raise ArtifactError(f"{pointer} names {name!r}, which is not a version name (v0001, v0002, ...)")
    return name


def set_current(store: Path, version: str) -> None:
    if not (store / version / MANIFEST).is_file():
        raise ArtifactError(f"cannot point CURRENT at {version}: {store / version} is not a complete version")
    write_text_atomic(Store(store).current_file, version + "\n")


def resolve(path: str | Path) -> Path:
    """A version directory, or a store (its CURRENT version) -> the version directory."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if not path.exists():
        raise ArtifactError(f"artifact path {path} does not exist")
    version = current_version(path)
    if version is None:
        raise ArtifactError(f"{path} is neither a model version (no {MANIFEST}) nor a store with a {CURRENT} pointer")
    if not (path / version / MANIFEST).is_file():
        raise ArtifactError(f"{path / CURRENT} points at {version}, but {path / version} has no {MANIFEST}")
    return path / version


def write_version(
    store: str | Path,
    model: ELCRec,
    item_ids: list[str | None],
    info: dict[str, Any],
    make_current: bool = True,
    index_spec: str | None = None,
    intents: IntentSpace | None = None,
    catalog: Catalog | None = None,
) -> Path:
    """Write the model as the store's next version (atomically); return its directory.

    With `index_spec` (a FAISS index-factory string such as "IVF4096,Flat" or "HNSW32") the version also
    stores that index over its item rows, which a service configured with the same string loads as is. With
    `intents` carrying a calibration (bias, profiles) the version stores it in intents.safetensors. With `catalog`
    the version stores it (catalog.jsonl) and the manifest describes it; refused when it knows none of the items."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    if len(item_ids) != cfg.vocab_size:
        raise ArtifactError(f"item vocabulary has {len(item_ids)} rows, the model {cfg.vocab_size}")
    if "index" in info:
        raise ArtifactError("the manifest's 'index' entry describes index.faiss: pass index_spec instead")
    if "catalog" in info:
        raise ArtifactError("the manifest's 'catalog' entry describes catalog.jsonl: pass catalog instead")
    known = covered(catalog, item_ids) if catalog is not None else 0
    if catalog is not None and not known:
        model_ids = [i for i in item_ids[1:4] if i is not None]
        raise ArtifactError(
            f"the catalog {catalog.source} knows none of the model's {len(item_ids) - 2} items (the model's ids "
            f"look like {model_ids}, the catalog's like {list(catalog.ids[:3])}): is the id column the right one?")
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    index = None
    if index_spec is not None:
        try:
            index = build_item_index(item_rows(state["item_embeddings.weight"].numpy()), index_spec)
        except ValueError as exc:
            raise ArtifactError(f"cannot build the item index: {exc}") from exc
    calibration = {} if intents is None else {
        name: t.detach().to("cpu", torch.float32).contiguous()
        for name, t in (("bias", intents.bias), ("profiles", intents.profiles)) if t is not None
    }
    if intents is not None and tuple(intents.centers.shape) != (cfg.n_intents, cfg.d):
        raise ArtifactError(f"the intents have shape {tuple(intents.centers.shape)}, the model {(cfg.n_intents, cfg.d)}")
    files = ((WEIGHTS, ITEMS) + ((INDEX,) if index is not None else ()) + ((INTENTS,) if calibration else ())
             + ((CATALOG,) if catalog is not None else ()))
    tmp = Path(tempfile.mkdtemp(dir=store, prefix=".tmp-"))
    try:
        os.chmod(tmp, 0o755)
        _save_weights(state, tmp / WEIGHTS)
        (tmp / ITEMS).write_text(json.dumps({"ids": item_ids}))
        if index is not None:
            write_item_index(index, tmp / INDEX)
            info = {**info, "index": {"spec": index_spec, "file": INDEX}}
        if catalog is not None:
            (tmp / CATALOG).write_text(catalog.to_jsonl(), encoding="utf-8")
            info = {**info, "catalog": {**catalog.describe(), "file": CATALOG, "known_items": known}}
        if calibration:
            _save_weights(calibration, tmp / INTENTS)
            info = {**info, "intent_calibration": {**info.get("intent_calibration", {}), "file": INTENTS,
                                                   "holds": sorted(calibration)}}
        existing = list_versions(store)
        number = int(existing[-1][1:]) + 1 if existing else 1
        version = f"v{number:04d}"
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "parent": current_version(store),
            "model_config": cfg.to_dict(),
            "n_items": cfg.n_items,
            "n_intents": cfg.n_intents,
            **info,
            "files": {name: sha256_file(tmp / name) for name in files},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for name in (*files, MANIFEST):
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        while True:
            try:
                os.rename(tmp, store / version)
                break
            except OSError:  # another writer took that number
                if not (store / version).exists():
                    raise
                number += 1
                version = f"v{number:04d}"
                manifest["version"] = version
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        _fsync_dir(store)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if make_current:
        set_current(store, version)
    return store / version


def read_manifest(version_dir: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((version_dir / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{version_dir / MANIFEST} is unreadable: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{version_dir / MANIFEST} is not a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{version_dir} has format_version {manifest.get('format_version')!r}; this elcrec reads {FORMAT_VERSION}"
        )
    return manifest


def load_artifact(path: str | Path, device: str | torch.device = "cpu", verify: bool = True) -> Artifact:
    """Load and check a version (or a store's CURRENT version). Raises ArtifactError on any mismatch."""
    version_dir = resolve(path)
    manifest = read_manifest(version_dir)
    files = manifest.get("files")
    if not isinstance(files, dict) or not {WEIGHTS, ITEMS} <= set(files) <= {WEIGHTS, ITEMS, *OPTIONAL_FILES}:
        raise ArtifactError(
            f"{version_dir / MANIFEST} does not list the checksums of {WEIGHTS} and {ITEMS} (and of "
            f"{' and '.join(OPTIONAL_FILES)}, if any), and nothing else"
        )
    index_spec = _stored_index_spec(manifest, INDEX in files, version_dir)
    _check_catalog_entry(manifest, CATALOG in files, version_dir)
    if verify:
        for name, expected in files.items():
            if not (version_dir / name).is_file():
                raise ArtifactError(f"{version_dir} is missing {name}")
            actual = sha256_file(version_dir / name)
            if actual != expected:
                raise ArtifactError(f"{version_dir / name} is corrupt: sha256 {actual[:12]}..., manifest says {expected[:12]}...")
    try:
        cfg = ModelConfig.from_dict(manifest["model_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{version_dir / MANIFEST} has an invalid model_config: {exc}") from exc
    try:
        state = load_file(str(version_dir / WEIGHTS))
        items = json.loads((version_dir / ITEMS).read_text())["ids"]
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"{version_dir} has unreadable weights or items: {exc}") from exc
    if not isinstance(items, list) or len(items) != cfg.vocab_size:
        raise ArtifactError(f"{version_dir / ITEMS} has {len(items)} rows; the model config needs {cfg.vocab_size}")
    model = ELCRec(cfg)
    expected_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got_shapes = {k: tuple(v.shape) for k, v in state.items()}
    if expected_shapes != got_shapes:
        missing = sorted(set(expected_shapes) - set(got_shapes))
        extra = sorted(set(got_shapes) - set(expected_shapes))
        wrong = sorted(k for k in set(expected_shapes) & set(got_shapes) if expected_shapes[k] != got_shapes[k])
        raise ArtifactError(
            f"{version_dir / WEIGHTS} does not match its config: missing {missing[:3]}, unexpected {extra[:3]}, "
            f"wrong shape {[(k, got_shapes[k], expected_shapes[k]) for k in wrong[:3]]}"
        )
    model.load_state_dict(state)
    model.to(device).eval()
    version = str(manifest.get("version", version_dir.name))
    info = ManifestInfo.read(manifest, cfg.n_intents, cfg.d)
    calibration = _calibration(version_dir, cfg) if INTENTS in files else None
    return Artifact(version_dir, version, manifest, cfg, model, items, info, index_spec, calibration)


def _calibration(version_dir: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    try:
        cal = load_file(str(version_dir / INTENTS))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"{version_dir / INTENTS} is unreadable: {exc}") from exc
    shapes = {"bias": (cfg.n_intents,), "profiles": (cfg.n_intents, cfg.d)}
    for name, t in cal.items():
        if name not in shapes or tuple(t.shape) != shapes[name] or not t.isfinite().all():
            raise ArtifactError(
                f"{version_dir / INTENTS} holds {name!r} of shape {tuple(t.shape)}; it may hold only finite 'bias' "
                f"{shapes['bias']} and 'profiles' {shapes['profiles']}"
            )
    return cal


def _check_catalog_entry(manifest: dict[str, Any], listed: bool, version_dir: Path) -> None:
    entry = manifest.get("catalog")
    if not listed and entry is None:
        return
    if not listed:
        raise ArtifactError(f"{version_dir / MANIFEST} describes a catalog but does not checksum {CATALOG}")
    if (not isinstance(entry, dict) or entry.get("file") != CATALOG or not isinstance(entry.get("fields"), list)
            or not all(isinstance(f, str) for f in entry["fields"])):
        raise ArtifactError(
            f"{version_dir / MANIFEST} checksums {CATALOG} but has no catalog entry {{\"file\": \"{CATALOG}\", "
            "\"fields\": [...]}}"
        )


def _stored_index_spec(manifest: dict[str, Any], listed: bool, version_dir: Path) -> str | None:
    entry = manifest.get("index")
    if not listed and entry is None:
        return None
    if not listed:
        raise ArtifactError(f"{version_dir / MANIFEST} describes a stored index but does not checksum {INDEX}")
    if not isinstance(entry, dict) or entry.get("file") != INDEX or not isinstance(entry.get("spec"), str):
        raise ArtifactError(
            f"{version_dir / MANIFEST} checksums {INDEX} but has no index entry {{\"spec\": ..., \"file\": \"{INDEX}\"}}"
        )
    return str(entry["spec"])
