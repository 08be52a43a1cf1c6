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

import contextlib
import dataclasses
import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis
import torch
from redis.exceptions import RedisError, ResponseError

from model.artifact import (
    Artifact,
    ArtifactError,
    current_version,
    load_artifact,
    set_current,
    write_text_atomic,
    write_version,
)
from model.encoder import ELCRec
from model.events import EVENTS_STREAM, WATERMARK_KEY, decode_event
from training.config import TrainConfig
from training.data import (
    DataError,
    EvalSplit,
    Interactions,
    eval_split,
    left_pad,
    read_interactions,
    train_split,
)
from training.evaluate import evaluate_split, user_vectors
from training.export import full_metrics, version_info
from training.intent_ids import keep_intent_ids
from training.metrics import hit_ndcg, mask_scores, target_ranks
from training.trainer import Trainer

DATA_DIR = "data"
LOCK_FILE = ".retrain.lock"
TMP_PREFIX = ".tmp-"
STALE_TMP_S = 600.0  # a temporary dir untouched this long belongs to a dead writer
GATE_METRIC = "NDCG@10"
PAGE = 10_000  # stream entries per XRANGE call
TRAIN_OVERRIDES = ("epochs", "patience", "lr", "batch_size", "seed")


class RetrainError(Exception):
    """Bad input or a store/stream state the job cannot use; the message says what and how to fix it."""


class RetrainUnavailable(Exception):
    """Nothing wrong with the input, but not now: Redis unreachable, or another retrain holds the store."""


@dataclass(frozen=True)
class RetrainOptions:
    store: Path
    base_data: Path
    redis_url: str
    gate_tolerance: float = 0.02
    device: str = "cpu"
    train_overrides: dict[str, Any] = field(default_factory=dict)  # keys from TRAIN_OVERRIDES
    progress: bool = False


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


# -- stream ids ------------------------------------------------------------------------------------------


def stream_id_key(sid: str) -> tuple[int, int]:
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


# -- the Redis side: events stream and watermark --------------------------------------------------------


class EventLog:
    """The service's event stream and this job's watermark, behind a small typed class."""

    def __init__(self, url: str, stream: str = EVENTS_STREAM, key: str = WATERMARK_KEY) -> None:
        try:
            self._redis = redis.Redis.from_url(
                url, decode_responses=True, socket_timeout=30, socket_connect_timeout=5
            )
        except ValueError as exc:
            raise RetrainError(f"--redis {url!r} is not a Redis URL: {exc}") from exc
        self.url, self.stream, self.key = url, stream, key

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ResponseError as exc:  # Redis answered: the data is wrong (e.g. the key is not a stream)
            raise RetrainError(f"Redis at {self.url} refused {what}: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise RetrainUnavailable(
                f"Redis at {self.url} failed while {what}: {type(exc).__name__}: {exc}"
            ) from exc

    def ping(self) -> None:
        self._call("connecting", self._redis.ping)

    def watermark(self) -> str | None:
        value = self._call("reading the watermark", lambda: self._redis.get(self.key))
        if value is not None:
            try:
                stream_id_key(value)
            except ValueError:
                raise RetrainError(
                    f"Redis key {self.key} holds {value!r}, not a stream id; "
                    "delete it to rebuild from BASE_FILE"
                ) from None
        return value

    def snapshot(self) -> tuple[str | None, int | None]:
        """(id of the newest entry ever added, number of entries ever added), read at one instant.
        The count needs Redis >= 7 (else None); with it, events trimmed away before being read are counted."""
        if not self._call("reading the stream", lambda: self._redis.exists(self.stream)):
            return None, 0
        info = self._call("reading the stream", lambda: self._redis.xinfo_stream(self.stream))
        added = info.get("entries-added")
        return str(info["last-generated-id"]), None if added is None else int(added)

    def read(self, after: str | None, upto: str) -> Iterator[tuple[str, dict[str, str]]]:
        """Entries with after < id <= upto, oldest first, a page at a time."""
        start = f"({after}" if after else "-"
        while True:
            page = self._call(
                "reading the stream",
                lambda start=start: self._redis.xrange(self.stream, min=start, max=upto, count=PAGE),  # type: ignore[misc]
            )
            yield from page
            if len(page) < PAGE:
                return
            start = f"({page[-1][0]}"

    def set_watermark(self, sid: str) -> None:
        self._call("storing the watermark", lambda: self._redis.set(self.key, sid))

    def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            self._redis.close()


# -- merging -----------------------------------------------------------------------------------------------


@dataclass
class Merged:
    data: Interactions  # item ids are rows of item_ids
    item_ids: list[str | None]  # row -> external id; None for padding (0) and mask (last)
    n_known: int  # rows 1..n_known are the items of the current model, at the same rows
    events: int = 0
    skipped: int = 0
    new_users: int = 0
    updated_users: int = 0
    new_items: list[str] = field(default_factory=list)


class Vocabulary:
    """External item id <-> row, grown at the end; existing rows never move."""

    def __init__(self, item_ids: list[str | None]) -> None:
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        for row, item in enumerate(item_ids[1:-1], start=1):
            if not isinstance(item, str) or not item:
                raise RetrainError(f"the current version's items.json has no external id for row {row}")
            if item in self.rows:
                raise RetrainError(f"the current version's items.json names item {item!r} twice")
            self.ids.append(item)
            self.rows[item] = row
        self.n_known = len(self.ids)

    def row(self, item: str) -> int:
        r = self.rows.get(item)
        if r is None:
            self.ids.append(item)
            r = self.rows[item] = len(self.ids)
        return r

    def item_ids(self) -> list[str | None]:
        return [None, *self.ids, None]

    @property
    def new_items(self) -> list[str]:
        return self.ids[self.n_known :]


def merge(
    base: Interactions,
    base_ids: list[str | None],
    current_ids: list[str | None],
    events: Iterator[tuple[str, dict[str, str]]],
    source: str = "",
) -> Merged:
    """Base sequences (rows of base_ids) + events -> sequences in the current model's rows, grown as needed.

    Existing users' histories grow at the end, new users are added after the base users in order of their
    first event; items the current model does not know get rows N+1.. in order of first appearance.
    """
    vocab = Vocabulary(current_ids)
    translate = np.zeros(len(base_ids), dtype=np.int64)
    used = np.unique(base.items)
    for r in used.tolist():
        ext = base_ids[r] if 0 < r < len(base_ids) else None
        if ext is None:
            raise RetrainError(f"{base.source}: item row {r} has no external id")
        translate[r] = vocab.row(ext)
    seqs: list[np.ndarray] = [translate[base.sequence(u)] for u in range(base.n_users)]
    users = list(base.users)
    index = {u: i for i, u in enumerate(users)}
    grown: dict[int, list[int]] = {}
    n_events = skipped = 0
    for _, fields in events:
        parsed = decode_event(fields)
        if parsed is None:
            skipped += 1
            continue
        user, items = parsed
        n_events += 1
        i = index.get(user)
        if i is None:
            i = index[user] = len(users)
            users.append(user)
            seqs.append(np.zeros(0, dtype=np.int64))
        grown.setdefault(i, []).extend(vocab.row(it) for it in items)
    for i, rows in grown.items():
        seqs[i] = np.concatenate([seqs[i], np.asarray(rows, dtype=np.int64)])
    data = Interactions.from_sequences(users, seqs, len(vocab.ids), source=source)
    return Merged(
        data=data,
        item_ids=vocab.item_ids(),
        n_known=vocab.n_known,
        events=n_events,
        skipped=skipped,
        new_users=len(users) - base.n_users,
        updated_users=sum(1 for i in grown if i < base.n_users),
        new_items=vocab.new_items,
    )


# -- the store's merged data -------------------------------------------------------------------------------


def data_paths(store: Path, version: str) -> tuple[Path, Path]:
    return store / DATA_DIR / f"{version}.txt", store / DATA_DIR / f"{version}.json"


def find_base(store: Path, watermark: str | None) -> tuple[str, dict[str, Any]] | None:
    """The newest version whose merged data was cut at `watermark`, with its sidecar (None: BASE_FILE)."""
    if watermark is None:
        return None
    folder = store / DATA_DIR
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
    """-> (interactions, row -> external id of their item ids, description of where they came from)."""
    if version is None:
        try:
            data = read_interactions(base_file)
        except DataError as exc:
            raise RetrainError(str(exc)) from exc
        return data, [None, *(str(i) for i in range(1, data.n_items + 1)), None], str(base_file)
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


def _atomic_write(path: Path, text: str) -> None:
    write_text_atomic(path, text, prefix=TMP_PREFIX + path.name + ".")  # TMP_PREFIX: stale ones get cleaned


def write_merged(store: Path, version: str, merged: Merged, meta: dict[str, Any]) -> Path:
    txt, sidecar = data_paths(store, version)
    txt.parent.mkdir(parents=True, exist_ok=True)
    data = merged.data
    lines = (user + " " + " ".join(map(str, data.sequence(u).tolist())) for u, user in enumerate(data.users))
    _atomic_write(txt, "".join(line + "\n" for line in lines))
    _atomic_write(sidecar, json.dumps({"version": version, **meta}, indent=2, sort_keys=True))
    return txt


def remove_stale_tmp(store: Path, older_than_s: float = STALE_TMP_S) -> list[str]:
    """Temporary files and dirs of killed writers (versions, merged data), once nobody can still own them."""
    removed = []
    now = time.time()
    # .CURRENT.*: what a kill inside model.artifact.set_current leaves. (glob of a missing dir: nothing)
    patterns = [(store, TMP_PREFIX + "*"), (store, ".CURRENT.*"), (store / DATA_DIR, TMP_PREFIX + "*")]
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
        fh = open(store / LOCK_FILE, "a")  # noqa: SIM115  (closed below)
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


# -- training ----------------------------------------------------------------------------------------------


WARM_LR_SCALE = 0.1  # a warm-started retrain's learning rate, relative to the one the version was trained with


def train_config(manifest: dict[str, Any], overrides: dict[str, Any], pooling: str) -> TrainConfig:
    """The current version's training config (manifest origin.train_config) with the given overrides, and a tenth of
    its learning rate unless one is given: a warm start fine-tunes. Measured on the Beauty balanced-intent model
    (events from 1% of users, 2 epochs, bench.intent_ids): at the training rate the candidate lost 2.7% of
    NDCG@10 (the gate refuses it) and 79.5% of users kept their intent id; at a tenth, -0.2% and 94.9%."""
    origin = manifest.get("origin")
    saved = origin.get("train_config") if isinstance(origin, dict) else None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    raw: dict[str, Any] = {"bucket": pooling == "real"}
    if isinstance(saved, dict):
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
    skipped = trainer.warm_start(current.model, merged.n_known)
    model = trainer.fit()
    return model, {**trainer.summary(), "train_config": tcfg.to_dict(), "warm_start_skipped": skipped}


# -- evaluation and the gate -------------------------------------------------------------------------------


@torch.inference_mode()
def evaluate_known(
    model: ELCRec, split: EvalSplit, n_known: int, vocab_size: int, device: str = "cpu"
) -> dict[str, float]:
    """Reference-protocol metrics of a model knowing only rows 1..n_known, on a split over a grown vocabulary.

    Unknown items are dropped from its inputs (as the service does with stored histories), score -inf, and a
    target it does not know is always a miss.
    """
    T = model.cfg.max_len
    if model.cfg.n_items != n_known:
        raise ValueError(f"the model has {model.cfg.n_items} items, n_known is {n_known}")
    inputs = left_pad([h[h <= n_known] for h in split.seen], T)
    vectors = user_vectors(model, inputs, device=device)
    table = model.item_table().detach().float().cpu()  # (n_known + 2, d)
    ranks = []
    for start in range(0, len(vectors), 2048):
        stop = min(start + 2048, len(vectors))
        known = vectors[start:stop] @ table.T  # (b, n_known + 2)
        scores = torch.full((stop - start, vocab_size), float("-inf"))
        scores[:, : n_known + 1] = known[:, : n_known + 1]
        scores[:, -1] = known[:, -1]
        seen = split.seen[start:stop]
        rows = torch.from_numpy(np.repeat(np.arange(stop - start), [len(s) for s in seen]))
        cols = torch.from_numpy(np.concatenate(seen)) if seen else torch.zeros(0, dtype=torch.long)
        scores = mask_scores(scores, rows, cols, "reference")
        scores[:, n_known + 1 : vocab_size - 1] = float("-inf")  # seen or not, it cannot score them
        targets = torch.from_numpy(split.targets[start:stop])
        r = target_ranks(scores, targets)
        never = torch.full_like(r, torch.iinfo(r.dtype).max // 2)  # past every cut-off, however small V is
        ranks.append(torch.where(targets > n_known, never, r))
    return hit_ndcg(torch.cat(ranks))


def compare(
    candidate: ELCRec, current: ELCRec, merged: Merged, tolerance: float, device: str
) -> dict[str, Any]:
    split = eval_split(merged.data, candidate.cfg.max_len, "test")
    cand = evaluate_split(candidate, split, ("reference",), device)["reference"]
    cur = evaluate_known(current, split, merged.n_known, candidate.cfg.vocab_size, device)
    threshold = (1.0 - tolerance) * cur[GATE_METRIC]
    return {
        "metric": GATE_METRIC,
        "split": "test",
        "protocol": "reference",
        "users": len(split.targets),
        "tolerance": tolerance,
        "candidate": cand[GATE_METRIC],
        "current": cur[GATE_METRIC],
        "threshold": threshold,
        "passed": cand[GATE_METRIC] >= threshold,
        "candidate_metrics": cand,
        "current_metrics": cur,
    }


# -- the job -----------------------------------------------------------------------------------------------


def retrain(opts: RetrainOptions, log: Callable[[str], None] = print) -> Summary:
    """Run the job once. Raises RetrainError (bad input) or RetrainUnavailable (try later); otherwise the
    summary says what happened (published, gated, superseded or no_new_events)."""
    started = time.perf_counter()
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
        live = current_version(store)
        if live is None:
            raise RetrainError(f"{store} has no CURRENT version (train a first version with `elcrec train`)")
    except ArtifactError as exc:
        raise RetrainError(str(exc)) from exc

    summary = Summary(status="", message="", store=str(store), current=live)
    events = EventLog(opts.redis_url)
    try:
        events.ping()
        with store_lock(store):
            removed = remove_stale_tmp(store)
            if removed:
                log(f"removed temporary files of interrupted writers: {', '.join(removed)}")
            _run(opts, events, summary, live, log)
    finally:
        events.close()
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


def _run(
    opts: RetrainOptions, events: EventLog, summary: Summary, live: str, log: Callable[[str], None]
) -> None:
    store = opts.store
    mark = events.watermark()
    upto, added = events.snapshot()
    summary.watermark = {"before": mark, "after": mark}
    summary.events = {"from": mark, "to": upto, "read": 0}
    if upto is None or (mark is not None and stream_id_key(upto) <= stream_id_key(mark)):
        summary.status, summary.message = (
            "no_new_events",
            f"no events after {mark or 'the start'} in {EVENTS_STREAM}",
        )
        return

    try:
        current = load_artifact(store / live, opts.device)
    except ArtifactError as exc:
        raise RetrainError(f"the current version cannot be loaded: {exc}") from exc
    found = find_base(store, mark)
    base, base_ids, base_source = read_base(store, opts.base_data, found[0] if found else None)
    merged = merge(base, base_ids, current.item_ids, events.read(mark, upto), source=base_source)
    # Entries ever added up to `upto`, minus those up to `mark`, minus those read: trimmed before we came.
    added_before = found[1].get("entries_added") if found else 0
    lost = None
    if added is not None and isinstance(added_before, int):
        lost = added - added_before - merged.events - merged.skipped
        lost = lost if lost >= 0 else None  # the stream was recreated: cannot tell
    summary.events = {
        "from": mark,
        "to": upto,
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
            f"warning: {lost} events of {EVENTS_STREAM} after {mark or 'the start'} were trimmed before this job "
            "read them (raise ELCREC_EVENTS_STREAM_MAXLEN or retrain more often)"
        )
    if merged.events == 0:
        summary.status = "no_new_events"
        summary.message = f"{merged.skipped} entries after {mark or 'the start'}, none of them a usable event"
        return
    log(
        f"merged {merged.events} events into {base_source}: {merged.data.n_users} users "
        f"({merged.new_users} new), {merged.data.n_items} items ({len(merged.new_items)} new)"
    )

    tcfg = train_config(current.manifest, opts.train_overrides, current.config.pooling)
    model, train_info = train_candidate(current, merged, tcfg, opts.device, log, opts.progress)
    summary.train = train_info
    summary.intents = keep_intent_ids(model, current.model, merged.data, merged.n_known, opts.device)
    if summary.intents["matched"]:
        log(
            f"intent ids kept by {summary.intents['users_kept']:.1%} of the users (matched centers' cosine: mean "
            f"{summary.intents['mean_similarity']:.3f}, lowest {summary.intents['min_similarity']:.3f})"
        )
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
        return
    if current_version(store) != live:
        summary.status = "superseded"
        summary.message = (
            f"not published: CURRENT moved from {live} to {current_version(store)} during the run"
        )
        return

    metrics = full_metrics(model, merged.data, opts.device)
    origin = {
        "kind": "retrained",
        "parent": live,
        "events": {k: summary.events[k] for k in ("from", "to", "used", "new_users", "new_items")},
        "gate": {k: v for k, v in gate.items() if not k.endswith("_metrics")},
        "intent_ids": summary.intents,
        **train_info,
    }
    info = version_info(model, merged.data, merged.item_ids, origin, metrics, opts.device)
    info["data"]["merged_from"] = base_source
    version_dir = write_version(store, model, merged.item_ids, info, make_current=False)
    version = version_dir.name
    merged_path = write_merged(
        store,
        version,
        merged,
        {
            "watermark": upto,
            "entries_added": added,  # stream entries ever added up to the watermark (Redis >= 7)
            "base": base_source,
            "users": merged.data.n_users,
            "n_items": merged.data.n_items,
            "interactions": len(merged.data.items),
            "sha256": merged.data.fingerprint,
        },
    )
    summary.data["merged"] = str(merged_path)
    if current_version(store) != live:
        summary.status = "superseded"
        summary.message = (
            f"not published: CURRENT moved from {live} to {current_version(store)} during the run"
        )
        return
    set_current(store, version)
    summary.published = version
    summary.status = "published"
    summary.message = (
        f"published {version} (was {live}): {GATE_METRIC} {gate['candidate']:.4f} vs {gate['current']:.4f}"
    )
    try:
        events.set_watermark(upto)
    except RetrainUnavailable as exc:
        # Published, but the mark stays behind: the next run starts again from the data cut at the old mark
        # (this run's data is not chosen), so the events are folded in again, once.
        summary.message += f"; the watermark was not stored ({exc}), the next run reads these events again"
        log(f"warning: {exc}")
        return
    summary.watermark["after"] = upto
