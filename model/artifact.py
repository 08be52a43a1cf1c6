"""Versioned model artifacts: a store directory of immutable versions and a CURRENT pointer.

    STORE/
      CURRENT              name of the live version (written atomically)
      v0001/ manifest.json weights.safetensors items.json [index.faiss] [intents.safetensors] [catalog.jsonl]
      v0002/ ...
      data/vNNNN.txt|json  the merged interactions a retrained version was trained on (training/merged_store.py)
      .retrain.lock        held while a retrain runs
      runs/<run>/          training runs: checkpoint.pt, log.jsonl, result.json (training/run.py, trainer.py)
      demo/synthetic.txt   the data of `elcrec bootstrap`'s demo model, unless told to write it elsewhere

`Store` below owns this layout and the operations on it; no other module spells a path in it.

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
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
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
from elcrec.model.manifest import CORE_KEYS, Manifest, ManifestError, ManifestInfo

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
ITEMS = "items.json"
INDEX = "index.faiss"
INTENTS = "intents.safetensors"
CATALOG = "catalog.jsonl"
OPTIONAL_FILES = (INDEX, INTENTS, CATALOG)
CURRENT = "CURRENT"
TMP_PREFIX = ".tmp-"  # what the store's writers name their temporaries: a killed writer's are removed once stale
STALE_TMP_S = 600.0  # a temporary untouched this long belongs to a dead writer
_VERSION_RE = re.compile(r"^v(\d{4,})$")


class ArtifactError(Exception):
    """A store or version that cannot be used; the message says what is wrong."""


@dataclass
class Artifact:
    path: Path
    manifest: Manifest  # typed (model/manifest.py)
    model: ELCRec
    item_ids: list[str | None]  # row -> external id; None for padding (row 0) and mask (row N + 1)
    index_spec: str | None = None  # factory string of the stored index.faiss; None when there is none
    calibration: dict[str, torch.Tensor] | None = None  # intents.safetensors ("bias", "profiles"); None: none stored

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def config(self) -> ModelConfig:
        return self.manifest.model_config

    @property
    def info(self) -> ManifestInfo:
        """The manifest's description of the model (origin, metrics, intents ...)."""
        return self.manifest.info

    @property
    def index_path(self) -> Path | None:
        return self.path / INDEX if self.index_spec is not None else None

    def read_catalog(self) -> Catalog | None:
        """The stored catalog (checked against its checksum when loaded with verify); None: the version has none."""
        entry = self.manifest.catalog
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


class StoreBusy(ArtifactError):
    """Another process holds the store's retrain lock."""


@dataclass(frozen=True)
class Store:
    """An artifact store (module docstring): the one owner of its layout and of the operations on it."""

    root: Path

    DATA_DIR = "data"
    LOCK_FILE = ".retrain.lock"
    RUNS_DIR = "runs"
    # inside a run directory (which --run-dir may also put outside a store)
    RUN_CHECKPOINT = "checkpoint.pt"
    RUN_LOG = "log.jsonl"
    RUN_RESULT = "result.json"

    # -- versions and CURRENT ---------------------------------------------------------------------------------

    def version(self, name: str) -> Path:
        return self.root / name

    def versions(self) -> list[str]:
        """The complete versions' names, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p.name) for p in self.root.iterdir()
                 if p.is_dir() and (m := _VERSION_RE.match(p.name))]
        return [name for _, name in sorted(found)]

    @property
    def current_file(self) -> Path:
        return self.root / CURRENT

    def current(self) -> str | None:
        """The version CURRENT names; None where there is no pointer."""
        pointer = self.current_file
        if not pointer.is_file():
            return None
        name = pointer.read_text().strip()
        if not _VERSION_RE.match(name):
            raise ArtifactError(f"{pointer} names {name!r}, which is not a version name (v0001, v0002, ...)")
        return name

    def set_current(self, version: str) -> None:
        """Point CURRENT at a complete version (atomically: readers see the old or the new name)."""
        if not (self.version(version) / MANIFEST).is_file():
            raise ArtifactError(
                f"cannot point CURRENT at {version}: {self.version(version)} is not a complete version")
        write_text_atomic(self.current_file, version + "\n")

    def write_version(
        self,
        model: ELCRec,
        item_ids: list[str | None],
        info: ManifestInfo,
        make_current: bool = True,
        index_spec: str | None = None,
        intents: IntentSpace | None = None,
        catalog: Catalog | None = None,
    ) -> Path:
        """Write the model as the next version (atomically); return its directory.

        With `index_spec` (a FAISS index-factory string such as "IVF4096,Flat" or "HNSW32") the version also
        stores that index over its item rows, which a service configured with the same string loads as is. With
        `intents` carrying a calibration (bias, profiles) the version stores it in intents.safetensors. With `catalog`
        the version stores it (catalog.jsonl) and the manifest describes it; refused when it knows none of the items."""
        self.root.mkdir(parents=True, exist_ok=True)
        cfg = model.cfg
        if len(item_ids) != cfg.vocab_size:
            raise ArtifactError(f"item vocabulary has {len(item_ids)} rows, the model {cfg.vocab_size}")
        clash = sorted(set(info.extra) & CORE_KEYS)
        if clash:
            raise ArtifactError(f"the manifest entries {clash} are written by the store itself (index: pass index_spec; "
                                "catalog: pass catalog)")
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
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=TMP_PREFIX))
        try:
            os.chmod(tmp, 0o755)
            _save_weights(state, tmp / WEIGHTS)
            (tmp / ITEMS).write_text(json.dumps({"ids": item_ids}))
            index_entry = None
            if index is not None:
                write_item_index(index, tmp / INDEX)
                index_entry = {"spec": index_spec, "file": INDEX}
            catalog_entry = None
            if catalog is not None:
                (tmp / CATALOG).write_text(catalog.to_jsonl(), encoding="utf-8")
                catalog_entry = {**catalog.describe(), "file": CATALOG, "known_items": known}
            if calibration:
                _save_weights(calibration, tmp / INTENTS)
                info = dataclasses.replace(info, intent_calibration={**(info.intent_calibration or {}), "file": INTENTS,
                                                                     "holds": sorted(calibration)})
            existing = self.versions()
            number = int(existing[-1][1:]) + 1 if existing else 1
            manifest = Manifest(
                version=f"v{number:04d}",
                model_config=cfg,
                files={name: sha256_file(tmp / name) for name in files},
                info=info,
                created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                parent=self.current(),
                index=index_entry,
                catalog=catalog_entry,
            )
            (tmp / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True))
            for name in (*files, MANIFEST):
                with open(tmp / name, "rb") as fh:
                    os.fsync(fh.fileno())
            while True:
                try:
                    os.rename(tmp, self.version(manifest.version))
                    break
                except OSError:  # another writer took that number
                    if not self.version(manifest.version).exists():
                        raise
                    number += 1
                    manifest = dataclasses.replace(manifest, version=f"v{number:04d}")
                    (tmp / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True))
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if make_current:
            self.set_current(manifest.version)
        return self.version(manifest.version)

    def manifest(self, version: str) -> Manifest:
        """A version's manifest, typed, without loading its weights."""
        return read_manifest(self.version(version))

    def item_ids(self, version: str) -> list[str | None]:
        """A version's row -> external id (items.json), without loading its weights."""
        path = self.version(version) / ITEMS
        try:
            ids = json.loads(path.read_text())["ids"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path} is unreadable: {exc}") from exc
        if not isinstance(ids, list):
            raise ArtifactError(f"{path} holds no list of ids")
        return ids

    def load(self, version: str | None = None, device: str | torch.device = "cpu", verify: bool = True) -> Artifact:
        """A version (CURRENT's where None), loaded and checked (load_artifact)."""
        return load_artifact(self.root if version is None else self.version(version), device, verify)

    def copy_in(self, version_dir: Path) -> str:
        """Add a copy of a version directory from elsewhere (a seed model, a benchmark's scratch store) under its
        own name where it is free, else the next number; it does not become CURRENT. Returns its name."""
        read_manifest(version_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=TMP_PREFIX))
        wanted = version_dir.name if _VERSION_RE.match(version_dir.name) else None
        try:
            os.chmod(tmp, 0o755)
            shutil.copytree(version_dir, tmp, dirs_exist_ok=True)
            while True:
                existing = self.versions()
                name = wanted if wanted is not None and wanted not in existing else (
                    f"v{int(existing[-1][1:]) + 1:04d}" if existing else "v0001")
                try:
                    os.rename(tmp, self.version(name))
                    break
                except OSError:  # another writer took that name
                    if not self.version(name).exists():
                        raise
                    wanted = None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.root)
        return name

    def remove(self, version: str) -> None:
        """Delete a version that is not CURRENT (the service may be reading CURRENT's files), with its merged data: that
        data's rows are this version's items, and its number may be given to the next version written."""
        if not _VERSION_RE.match(version) or not self.version(version).is_dir():
            raise ArtifactError(f"{self.root} has no version {version!r}")
        if self.current() == version:
            raise ArtifactError(f"{version} is CURRENT in {self.root}: point CURRENT elsewhere first")
        for path in self.merged_data(version)[::-1]:  # the sidecar first: data without one is never chosen
            path.unlink(missing_ok=True)
        doomed = self.root / f"{TMP_PREFIX}removed-{version}"
        os.rename(self.version(version), doomed)  # gone from versions() at once; its files go after
        shutil.rmtree(doomed)

    def remove_stale_tmp(self, older_than_s: float = STALE_TMP_S) -> list[str]:
        """Temporary files and dirs of killed writers (versions, CURRENT, merged data), once nobody can still own
        them; returns their paths relative to the store."""
        removed = []
        now = time.time()
        # .CURRENT.*: what a kill inside set_current (write_text_atomic) leaves. (glob of a missing dir: nothing)
        patterns = [(self.root, TMP_PREFIX + "*"), (self.root, f".{CURRENT}.*"), (self.data_dir, TMP_PREFIX + "*")]
        for folder, pattern in patterns:
            for p in folder.glob(pattern):
                with contextlib.suppress(OSError):
                    if now - p.lstat().st_mtime < older_than_s:
                        continue
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p)
                    else:
                        p.unlink()
                    removed.append(str(p.relative_to(self.root)))
        return removed

    # -- what retraining keeps beside the versions --------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.root / self.DATA_DIR

    def merged_data(self, version: str) -> tuple[Path, Path]:
        """(interactions, sidecar) of a retrained version's merged data."""
        return self.data_dir / f"{version}.txt", self.data_dir / f"{version}.json"

    def merged_versions(self) -> list[str]:
        """The versions whose merged data (interactions and sidecar) is in the store, oldest first."""
        if not self.data_dir.is_dir():
            return []
        found = [(int(m.group(1)), m.group(0)) for p in self.data_dir.glob("v*.json")
                 if (m := _VERSION_RE.match(p.stem)) and self.merged_data(p.stem)[0].is_file()]
        return [name for _, name in sorted(found)]

    def write_merged_data(self, version: str, interactions: str, sidecar: dict[str, Any]) -> Path:
        """Store a version's merged data (interactions, then its sidecar, each atomically); -> the interactions."""
        txt, meta = self.merged_data(version)
        txt.parent.mkdir(parents=True, exist_ok=True)
        for path, text in ((txt, interactions), (meta, json.dumps({"version": version, **sidecar}, indent=2,
                                                                   sort_keys=True))):
            write_text_atomic(path, text, prefix=TMP_PREFIX + path.name + ".")  # TMP_PREFIX: stale ones get cleaned
        return txt

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the retrain lock (an flock: a killed holder releases it); StoreBusy where another process holds
        it, ArtifactError where the store cannot be written."""
        try:
            fh = open(self.root / self.LOCK_FILE, "a")  # noqa: SIM115  (closed below)
        except OSError as exc:
            raise ArtifactError(f"cannot write to the artifact store {self.root}: {exc}") from exc
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreBusy(f"another elcrec retrain is running on {self.root} (it holds {self.LOCK_FILE})") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @property
    def demo_data(self) -> Path:
        """The synthetic data of `elcrec bootstrap`'s demo model, where no other place was given for it."""
        return self.root / "demo" / "synthetic.txt"

    # -- training runs ------------------------------------------------------------------------------------------

    @property
    def runs_dir(self) -> Path:
        return self.root / self.RUNS_DIR

    def run(self, name: str) -> Path:
        return self.runs_dir / name

    def run_files(self, name: str) -> list[Path]:
        """Every run's file called `name` (RUN_RESULT, RUN_LOG), sorted by path."""
        return sorted(self.runs_dir.glob(f"*/{name}")) if self.runs_dir.is_dir() else []


def resolve(path: str | Path) -> Path:
    """A version directory, or a store (its CURRENT version) -> the version directory."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if not path.exists():
        raise ArtifactError(f"artifact path {path} does not exist")
    version = Store(path).current()
    if version is None:
        raise ArtifactError(f"{path} is neither a model version (no {MANIFEST}) nor a store with a {CURRENT} pointer")
    if not (path / version / MANIFEST).is_file():
        raise ArtifactError(f"{path / CURRENT} points at {version}, but {path / version} has no {MANIFEST}")
    return path / version


def read_manifest(version_dir: Path) -> Manifest:
    """A version directory's manifest, typed (model/manifest.py); ArtifactError where its core is unusable."""
    try:
        raw = json.loads((version_dir / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{version_dir / MANIFEST} is unreadable: {exc}") from exc
    try:
        return Manifest.read(raw, str(version_dir / MANIFEST), version_dir.name)
    except ManifestError as exc:
        raise ArtifactError(str(exc)) from exc


def load_artifact(path: str | Path, device: str | torch.device = "cpu", verify: bool = True) -> Artifact:
    """Load and check a version (or a store's CURRENT version). Raises ArtifactError on any mismatch."""
    version_dir = resolve(path)
    manifest = read_manifest(version_dir)
    files = manifest.files
    if not {WEIGHTS, ITEMS} <= set(files) <= {WEIGHTS, ITEMS, *OPTIONAL_FILES}:
        raise ArtifactError(
            f"{version_dir / MANIFEST} does not list the checksums of {WEIGHTS} and {ITEMS} (and of "
            f"{' and '.join(OPTIONAL_FILES)}, if any), and nothing else"
        )
    index_spec = _stored_index_spec(manifest.index, INDEX in files, version_dir)
    _check_catalog_entry(manifest.catalog, CATALOG in files, version_dir)
    if verify:
        for name, expected in files.items():
            if not (version_dir / name).is_file():
                raise ArtifactError(f"{version_dir} is missing {name}")
            actual = sha256_file(version_dir / name)
            if actual != expected:
                raise ArtifactError(f"{version_dir / name} is corrupt: sha256 {actual[:12]}..., manifest says {expected[:12]}...")
    cfg = manifest.model_config
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
    calibration = _calibration(version_dir, cfg) if INTENTS in files else None
    return Artifact(version_dir, manifest, model, items, index_spec, calibration)


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


def _check_catalog_entry(entry: dict[str, Any] | None, listed: bool, version_dir: Path) -> None:
    if not listed and entry is None:
        return
    if not listed:
        raise ArtifactError(f"{version_dir / MANIFEST} describes a catalog but does not checksum {CATALOG}")
    if (entry is None or entry.get("file") != CATALOG or not isinstance(entry.get("fields"), list)
            or not all(isinstance(f, str) for f in entry["fields"])):
        raise ArtifactError(
            f"{version_dir / MANIFEST} checksums {CATALOG} but has no catalog entry {{\"file\": \"{CATALOG}\", "
            "\"fields\": [...]}}"
        )


def _stored_index_spec(entry: dict[str, Any] | None, listed: bool, version_dir: Path) -> str | None:
    if not listed and entry is None:
        return None
    if not listed:
        raise ArtifactError(f"{version_dir / MANIFEST} describes a stored index but does not checksum {INDEX}")
    if entry is None or entry.get("file") != INDEX or not isinstance(entry.get("spec"), str):
        raise ArtifactError(
            f"{version_dir / MANIFEST} checksums {INDEX} but has no index entry {{\"spec\": ..., \"file\": \"{INDEX}\"}}"
        )
    return str(entry["spec"])
