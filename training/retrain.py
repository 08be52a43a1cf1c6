"""The batch retraining job: fold the service's events into the data, retrain warm, publish only if not worse.

What it keeps besides the versions (STORE/CURRENT, STORE/v0001/, ...):

    STORE/data/vNNNN.txt   the merged interactions vNNNN was trained on, one user a line. Item ids are ROWS of
                           STORE/vNNNN/items.json (integers, so training/data.py reads the file as it is, and
                           `elcrec evaluate STORE/vNNNN --data STORE/data/vNNNN.txt` works); users are the
                           external user ids.
    STORE/data/vNNNN.json  its sidecar: id of the last stream entry folded in ("watermark"), the stream's
                           entries-added count at that id (to count events trimmed before a run), counts.
    STORE/.retrain.lock    flock held while a retrain runs (a second one is refused, not queued).
    Redis elcrec:retrain:watermark
                           id of the last event of the stream folded into the data of the published version.

Which data a run starts from: the newest STORE/data/vNNNN.txt whose sidecar watermark equals the one in Redis,
or BASE_FILE (integer ids, read as the external ids "1".."N") when Redis holds no watermark. The pair
(data, watermark) therefore always describes the same events, even after a run killed between publishing and
moving the watermark: that run's data is simply not chosen, and the events are read again from the old mark.

Publishing order: version directory (atomic, not current) -> data + sidecar -> CURRENT -> watermark. A run
killed anywhere before CURRENT moves leaves an unused (complete) version number and nothing live; `.tmp-*`
directories left by a kill are ignored by everyone and removed by a later run once they are stale. CURRENT is
only moved if it still names the version the run started from (else the run reports "superseded").
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elcrec.model.artifact import Artifact, ArtifactError, Store
from elcrec.model.catalog import Catalog
from elcrec.model.encoder import ELCRec
from elcrec.training.config import TrainConfig
from elcrec.training.data import train_split
from elcrec.training.event_log import EventLog
from elcrec.training.export import full_metrics, version_info
from elcrec.training.gate import GATE_METRIC, GATE_TOLERANCE, compare
from elcrec.training.intent_health import trained_balanced
from elcrec.training.intent_ids import LiveIntents, intent_ids_line, keep_intent_ids
from elcrec.training.merge import Merged, merge
from elcrec.training.merged_store import find_base, read_base, store_lock, write_merged
from elcrec.training.retrain_errors import RetrainError, RetrainUnavailable
from elcrec.training.trainer import Trainer

__all__ = ["RetrainError", "RetrainOptions", "RetrainUnavailable", "Summary", "retrain"]

TRAIN_OVERRIDES = ("epochs", "patience", "lr", "batch_size", "seed")


@dataclass(frozen=True)
class RetrainOptions:
    store: Path
    base_data: Path
    redis_url: str
    gate_tolerance: float = GATE_TOLERANCE
    device: str = "cpu"
    train_overrides: dict[str, Any] = field(default_factory=dict)  # keys from TRAIN_OVERRIDES
    progress: bool = False
    catalog: Catalog | None = None  # for the new version; None: the live version's (if it has one) is kept


@dataclass
class Summary:
    status: str  # published | gated | superseded | no_new_events | error | unavailable
    message: str
    store: str
    current: str | None = None  # live version when the run started
    published: str | None = None
    watermark: dict[str, str | None] = field(default_factory=lambda: {"before": None, "after": None})
    events: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    intents: dict[str, Any] = field(default_factory=dict)  # how the new version's intent ids match the live one's
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- training ----------------------------------------------------------------------------------------------


WARM_LR_SCALE = 0.1  # a warm-started retrain's learning rate, relative to the one the version was trained with


def train_config(saved: dict[str, Any] | None, overrides: dict[str, Any], pooling: str) -> TrainConfig:
    """The current version's training config (`saved`: manifest origin.train_config) with the given overrides, and a tenth of
    its learning rate unless one is given: a warm start fine-tunes. At the training rate a converged Beauty model's
    candidate lost ranking that the gate refuses, and more users changed intent (docs/research/INTENTS-NOTES.md,
    *The retrain's learning rate*)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    raw: dict[str, Any] = {"bucket": pooling == "real"}
    if saved is not None:
        raw = {k: v for k, v in saved.items() if k in known}
    raw["lr"] = raw.get("lr", TrainConfig.lr) * WARM_LR_SCALE
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**raw)
    except (TypeError, ValueError) as exc:
        raise RetrainError(f"invalid training config: {exc}") from exc


def train_candidate(
    current: Artifact,
    merged: Merged,
    tcfg: TrainConfig,
    device: str,
    log: Callable[[str], None],
    progress: bool,
) -> tuple[ELCRec, dict[str, Any]]:
    mcfg = dataclasses.replace(current.config, n_items=merged.data.n_items)
    if len(train_split(merged.data, mcfg.max_len).users) == 0:
        raise RetrainError("no user has the 4 interactions needed to train on (merged data)")
    try:
        trainer = Trainer(mcfg, tcfg, merged.data, None, device, log=log, progress=progress)
    except ValueError as exc:
        raise RetrainError(str(exc)) from exc
    skipped = trainer.warm_start(current.model, merged.n_known, current.intents, current.version)
    model = trainer.fit()
    return model, {**trainer.summary(), "train_config": tcfg.to_dict(), "warm_start_skipped": skipped}


# -- the job -----------------------------------------------------------------------------------------------


def retrain(opts: RetrainOptions, log: Callable[[str], None] = print) -> Summary:
    """Run the job once. Raises RetrainError (bad input) or RetrainUnavailable (try later); otherwise the
    summary says what happened (published, gated, superseded or no_new_events)."""
    started = time.perf_counter()
    store = opts.store
    live = _check(opts)
    summary = Summary(status="", message="", store=str(store), current=live)
    events = EventLog(opts.redis_url)
    try:
        events.ping()
        with store_lock(store):
            removed = Store(store).remove_stale_tmp()
            if removed:
                log(f"removed temporary files of interrupted writers: {', '.join(removed)}")
            _run(opts, events, summary, live, log)
    finally:
        events.close()
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


def _check(opts: RetrainOptions) -> str:
    """The options checked against the store -> the live version (RetrainError naming what is wrong)."""
    store = opts.store
    if opts.gate_tolerance > 1.0:
        raise RetrainError(
            f"--gate-tolerance must be at most 1 (1 publishes whatever comes out), got {opts.gate_tolerance}"
        )
    unknown = set(opts.train_overrides) - set(TRAIN_OVERRIDES)
    if unknown:
        raise RetrainError(f"unknown training overrides {sorted(unknown)}; allowed: {list(TRAIN_OVERRIDES)}")
    if not store.is_dir():
        raise RetrainError(
            f"artifact store {store} does not exist (train a first version with `elcrec train`)"
        )
    if not opts.base_data.is_file():
        raise RetrainError(f"base data file {opts.base_data} does not exist")
    try:
        live = Store(store).current()
        if live is None:
            raise RetrainError(f"{store} has no CURRENT version (train a first version with `elcrec train`)")
    except ArtifactError as exc:
        raise RetrainError(str(exc)) from exc
    return live


@dataclass(frozen=True)
class _Window:
    """The events one run folds in: those after `mark` (None: from the stream's start) up to `upto`."""

    mark: str | None
    upto: str
    added: int | None  # stream entries ever added up to `upto` (Redis >= 7; None before)


def _run(
    opts: RetrainOptions, events: EventLog, summary: Summary, live: str, log: Callable[[str], None]
) -> None:
    """The job's steps in order. A step that ends the run early has said why in `summary`."""
    window = _new_events(events, summary)
    if window is None:
        return
    current = _load_current(opts, live)
    got = _merge_events(opts, events, window, current, summary, log)
    if got is None:
        return
    merged, base_source = got
    model = _train(opts, current, merged, summary, log)
    if not _gate(opts, model, current, merged, live, summary, log) or _superseded(opts.store, live, summary):
        return
    version = _write(opts, model, merged, base_source, window, current, live, summary)
    if _superseded(opts.store, live, summary):
        return
    _publish(opts, events, version, window, live, summary, log)


def _new_events(events: EventLog, summary: Summary) -> _Window | None:
    """The stream's events after the watermark, or None (the summary says "no_new_events") where there are none."""
    mark = events.watermark()
    upto, added = events.snapshot()
    summary.watermark = {"before": mark, "after": mark}
    summary.events = {"from": mark, "to": upto, "read": 0}
    if upto is None or not events.has_new(mark, upto):
        summary.status, summary.message = (
            "no_new_events",
            f"no events after {mark or 'the start'} in {events.streams}",
        )
        return None
    return _Window(mark, upto, added)


def _load_current(opts: RetrainOptions, live: str) -> Artifact:
    try:
        return Store(opts.store).load(live, opts.device)
    except ArtifactError as exc:
        raise RetrainError(f"the current version cannot be loaded: {exc}") from exc


def _merge_events(
    opts: RetrainOptions,
    events: EventLog,
    window: _Window,
    current: Artifact,
    summary: Summary,
    log: Callable[[str], None],
) -> tuple[Merged, str] | None:
    """The window's events folded into the data cut at its mark -> (merged, where that data came from); None
    where none of the entries was a usable event."""
    mark = window.mark
    found = find_base(opts.store, mark)
    base, base_ids, base_source = read_base(opts.store, opts.base_data, found[0] if found else None)
    merged = merge(base, base_ids, current.item_ids, events.read(mark, window.upto), source=base_source)
    lost = _lost_before_read(window, found[1].get("entries_added") if found else 0, merged)
    summary.events = {
        "from": mark,
        "to": window.upto,
        "read": merged.events + merged.skipped,
        "used": merged.events,
        "skipped": merged.skipped,
        "lost_before_read": lost,
        "new_users": merged.new_users,
        "updated_users": merged.updated_users,
        "new_items": len(merged.new_items),
    }
    summary.data = {
        "base": base_source,
        "merged": None,
        "users": merged.data.n_users,
        "items": merged.data.n_items,
        "interactions": len(merged.data.items),
    }
    if lost:
        log(
            f"warning: {lost} events of {events.streams} after {mark or 'the start'} were trimmed before this job "
            "read them (raise ELCREC_EVENTS_STREAM_MAXLEN or retrain more often)"
        )
    if merged.events == 0:
        summary.status = "no_new_events"
        summary.message = f"{merged.skipped} entries after {mark or 'the start'}, none of them a usable event"
        return None
    log(
        f"merged {merged.events} events into {base_source}: {merged.data.n_users} users "
        f"({merged.new_users} new), {merged.data.n_items} items ({len(merged.new_items)} new)"
    )
    return merged, base_source


def _lost_before_read(window: _Window, added_before: Any, merged: Merged) -> int | None:
    """Entries ever added up to the window's end, minus those up to its mark (`added_before`, from the base's
    sidecar), minus those read: trimmed before we came. None where it cannot be told."""
    if window.added is None or not isinstance(added_before, int):
        return None
    lost = window.added - added_before - merged.events - merged.skipped
    return lost if lost >= 0 else None  # the stream was recreated: cannot tell


def _train(
    opts: RetrainOptions, current: Artifact, merged: Merged, summary: Summary, log: Callable[[str], None]
) -> ELCRec:
    """The candidate, warm-started from the current version, its intent ids matched to the live ones."""
    tcfg = train_config(current.info.train_config, opts.train_overrides, current.config.pooling)
    model, summary.train = train_candidate(current, merged, tcfg, opts.device, log, opts.progress)
    followed = LiveIntents(current.model, current.intents, merged.n_known, current.version)
    summary.intents = keep_intent_ids(model, followed, merged.data, trained_balanced(current.info.origin), opts.device)
    if summary.intents["matched"]:
        log(intent_ids_line(summary.intents))
    return model


def _gate(
    opts: RetrainOptions,
    model: ELCRec,
    current: Artifact,
    merged: Merged,
    live: str,
    summary: Summary,
    log: Callable[[str], None],
) -> bool:
    """Whether the candidate is not worse than the live version (else the summary says "gated")."""
    gate = compare(model, current.model, merged, opts.gate_tolerance, opts.device)
    summary.gate = gate
    log(
        f"gate: candidate {GATE_METRIC} {gate['candidate']:.4f}, current {gate['current']:.4f}, "
        f"needs {gate['threshold']:.4f}"
    )
    if not gate["passed"]:
        summary.status = "gated"
        summary.message = (
            f"not published: candidate {GATE_METRIC} {gate['candidate']:.4f} is below "
            f"{gate['threshold']:.4f} "
            f"(current {gate['current']:.4f} x (1 - {opts.gate_tolerance})); {live} stays live"
        )
    return bool(gate["passed"])


def _superseded(store: Path, live: str, summary: Summary) -> bool:
    """Whether CURRENT moved away from the version the run started from (someone else published meanwhile)."""
    now = Store(store).current()
    if now == live:
        return False
    summary.status = "superseded"
    summary.message = f"not published: CURRENT moved from {live} to {now} during the run"
    return True


def _write(
    opts: RetrainOptions,
    model: ELCRec,
    merged: Merged,
    base_source: str,
    window: _Window,
    current: Artifact,
    live: str,
    summary: Summary,
) -> str:
    """The candidate as a new version (not yet current) and the merged data it was trained on -> its name."""
    store = opts.store
    metrics = full_metrics(model, merged.data, opts.device)
    origin = {
        "kind": "retrained",
        "parent": live,
        "events": {k: summary.events[k] for k in ("from", "to", "used", "new_users", "new_items")},
        "gate": {k: v for k, v in summary.gate.items() if not k.endswith("_metrics")},
        "intent_ids": summary.intents,
        **summary.train,
    }
    info, intents = version_info(model, merged.data, merged.item_ids, origin, metrics, opts.device)
    info = dataclasses.replace(info, data={**info.data, "merged_from": base_source})
    catalog = opts.catalog if opts.catalog is not None else current.read_catalog()
    version_dir = Store(store).write_version(model, merged.item_ids, info, make_current=False, intents=intents,
                                catalog=catalog)
    version = version_dir.name
    merged_path = write_merged(
        store,
        version,
        merged,
        {
            "watermark": window.upto,
            "entries_added": window.added,  # stream entries ever added up to the watermark (Redis >= 7)
            "base": base_source,
            "users": merged.data.n_users,
            "n_items": merged.data.n_items,
            "interactions": len(merged.data.items),
            "sha256": merged.data.fingerprint,
        },
    )
    summary.data["merged"] = str(merged_path)
    return version


def _publish(
    opts: RetrainOptions,
    events: EventLog,
    version: str,
    window: _Window,
    live: str,
    summary: Summary,
    log: Callable[[str], None],
) -> None:
    """CURRENT to the new version, then the watermark to the window's end."""
    Store(opts.store).set_current(version)
    summary.published = version
    summary.status = "published"
    gate = summary.gate
    summary.message = (
        f"published {version} (was {live}): {GATE_METRIC} {gate['candidate']:.4f} vs {gate['current']:.4f}"
    )
    try:
        events.set_watermark(window.upto)
    except RetrainUnavailable as exc:
        # Published, but the mark stays behind: the next run starts again from the data cut at the old mark
        # (this run's data is not chosen), so the events are folded in again, once.
        summary.message += f"; the watermark was not stored ({exc}), the next run reads these events again"
        log(f"warning: {exc}")
        return
    summary.watermark["after"] = window.upto
