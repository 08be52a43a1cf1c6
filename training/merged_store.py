"""What retraining keeps in the artifact store beside the versions: the merged data each published version was
trained on (its interactions and sidecar) and the job's lock, in the job's terms; the store's layout and the operations
on it are model/artifact.py's Store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from elcrec.model.artifact import ArtifactError, Store, StoreBusy
from elcrec.model.events import WATERMARK_KEY
from elcrec.training.data import DataError, Interactions, read_interactions
from elcrec.training.export import item_ids_for
from elcrec.training.merge import Merged
from elcrec.training.retrain_errors import RetrainError, RetrainUnavailable


def find_base(store: Path, watermark: str | None) -> tuple[str, dict[str, Any]] | None:
    """The newest version whose merged data was cut at `watermark`, with its sidecar (None: BASE_FILE)."""
    if watermark is None:
        return None
    where = Store(store)
    found: list[tuple[str, dict[str, Any]]] = []
    for version in where.merged_versions():
        try:
            meta = json.loads(where.merged_data(version)[1].read_text())
        except (OSError, ValueError):  # JSONDecodeError is a ValueError
            continue
        if isinstance(meta, dict) and meta.get("watermark") == watermark:
            found.append((version, meta))
    if not found:
        raise RetrainError(
            f"Redis says the events up to {watermark} were folded in ({WATERMARK_KEY}), but {where.data_dir} has "
            f"no merged data cut there. Restore that data, or delete the Redis key {WATERMARK_KEY} "
            "to rebuild from BASE_FILE and the whole events stream"
        )
    return found[-1]  # merged_versions: oldest first


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
    path, _ = Store(store).merged_data(version)
    try:
        ids = Store(store).item_ids(version)
    except ArtifactError as exc:
        raise RetrainError(f"{path} holds rows of {version}'s item ids: {exc}") from exc
    try:
        data = read_interactions(path, n_items=len(ids) - 2)
    except DataError as exc:
        raise RetrainError(f"{exc} (merged data of {version})") from exc
    return data, ids, str(path)


def write_merged(store: Path, version: str, merged: Merged, meta: dict[str, Any]) -> Path:
    data = merged.data
    lines = (user + " " + " ".join(map(str, data.sequence(u).tolist())) for u, user in enumerate(data.users))
    return Store(store).write_merged_data(version, "".join(line + "\n" for line in lines), meta)


@contextlib.contextmanager
def store_lock(store: Path) -> Iterator[None]:
    """The store's retrain lock, its refusals as the job's errors (exit codes: elcrec/retrain_cli.py)."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(Store(store).lock())
        except StoreBusy as exc:
            raise RetrainUnavailable(str(exc)) from None
        except ArtifactError as exc:
            raise RetrainError(str(exc)) from exc
        yield
