"""What retraining keeps in the artifact store beside the versions: the merged data each published version was
trained on (STORE/data/vNNNN.txt and its sidecar), the job's lock, and the cleanup of killed writers' temporary
files. The layout is described in training/retrain.py."""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from elcrec.model.artifact import Store, write_text_atomic
from elcrec.model.events import WATERMARK_KEY
from elcrec.training.data import DataError, Interactions, read_interactions
from elcrec.training.export import item_ids_for
from elcrec.training.merge import Merged
from elcrec.training.retrain_errors import RetrainError, RetrainUnavailable

DATA_DIR = Store.DATA_DIR
LOCK_FILE = Store.LOCK_FILE
TMP_PREFIX = ".tmp-"
STALE_TMP_S = 600.0  # a temporary dir untouched this long belongs to a dead writer


def data_paths(store: Path, version: str) -> tuple[Path, Path]:
    return Store(store).merged_data(version)


def find_base(store: Path, watermark: str | None) -> tuple[str, dict[str, Any]] | None:
    """The newest version whose merged data was cut at `watermark`, with its sidecar (None: BASE_FILE)."""
    if watermark is None:
        return None
    folder = Store(store).data_dir
    found: list[tuple[int, str, dict[str, Any]]] = []
    for sidecar in folder.glob("v*.json"):
        try:
            meta = json.loads(sidecar.read_text())
            number = int(sidecar.stem[1:])
        except (OSError, ValueError):  # JSONDecodeError is a ValueError
            continue
        if (
            isinstance(meta, dict)
            and meta.get("watermark") == watermark
            and (folder / f"{sidecar.stem}.txt").is_file()
        ):
            found.append((number, sidecar.stem, meta))
    if not found:
        raise RetrainError(
            f"Redis says the events up to {watermark} were folded in ({WATERMARK_KEY}), but {folder} has "
            f"no merged data cut there. Restore that data, or delete the Redis key {WATERMARK_KEY} "
            "to rebuild from BASE_FILE and the whole events stream"
        )
    _, version, meta = max(found, key=lambda f: f[0])
    return version, meta


def read_base(
    store: Path, base_file: Path, version: str | None
) -> tuple[Interactions, list[str | None], str]:
    """-> (interactions, row -> external id of their item ids, description of where they came from). The base file's
    ids are its own (an imported data set's item_ids.txt; the authors' files' integers)."""
    if version is None:
        try:
            data = read_interactions(base_file)
        except DataError as exc:
            raise RetrainError(str(exc)) from exc
        return data, item_ids_for(data, data.n_items), str(base_file)
    path, _ = data_paths(store, version)
    items_file = store / version / "items.json"
    try:
        ids = json.loads(items_file.read_text())["ids"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RetrainError(f"{path} holds rows of {items_file}, which is unreadable: {exc}") from exc
    try:
        data = read_interactions(path, n_items=len(ids) - 2)
    except DataError as exc:
        raise RetrainError(f"{exc} (merged data of {version})") from exc
    return data, ids, str(path)


def atomic_write(path: Path, text: str) -> None:
    write_text_atomic(path, text, prefix=TMP_PREFIX + path.name + ".")  # TMP_PREFIX: stale ones get cleaned


def write_merged(store: Path, version: str, merged: Merged, meta: dict[str, Any]) -> Path:
    txt, sidecar = data_paths(store, version)
    txt.parent.mkdir(parents=True, exist_ok=True)
    data = merged.data
    lines = (user + " " + " ".join(map(str, data.sequence(u).tolist())) for u, user in enumerate(data.users))
    atomic_write(txt, "".join(line + "\n" for line in lines))
    atomic_write(sidecar, json.dumps({"version": version, **meta}, indent=2, sort_keys=True))
    return txt


def remove_stale_tmp(store: Path, older_than_s: float = STALE_TMP_S) -> list[str]:
    """Temporary files and dirs of killed writers (versions, merged data), once nobody can still own them."""
    removed = []
    now = time.time()
    # .CURRENT.*: what a kill inside model.artifact.set_current leaves. (glob of a missing dir: nothing)
    patterns = [(store, TMP_PREFIX + "*"), (store, ".CURRENT.*"), (Store(store).data_dir, TMP_PREFIX + "*")]
    for folder, pattern in patterns:
        for p in folder.glob(pattern):
            with contextlib.suppress(OSError):
                if now - p.lstat().st_mtime < older_than_s:
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(str(p.relative_to(store)))
    return removed


@contextlib.contextmanager
def store_lock(store: Path) -> Iterator[None]:
    try:
        fh = open(Store(store).lock_file, "a")  # noqa: SIM115  (closed below)
    except OSError as exc:
        raise RetrainError(f"cannot write to the artifact store {store}: {exc}") from exc
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetrainUnavailable(
                f"another elcrec retrain is running on {store} (it holds {LOCK_FILE})"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
