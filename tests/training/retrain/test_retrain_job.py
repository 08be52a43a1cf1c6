"""The retraining job against a real redis-server: publishing, folding events exactly once across runs,
the quality gate, interruptions at every stage, an empty stream, and bad input."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import torch
from typer.testing import CliRunner

import elcrec.training.retrain as job
from elcrec.cli import app
from elcrec.model.artifact import Store, load_artifact
from elcrec.training.data import read_interactions
from elcrec.training.event_log import EventLog
from elcrec.training.retrain import RetrainOptions, retrain
from elcrec.training.trainer import Trainer
from tests.support.retrain import (
    ELCREC_CLI,
    WATERMARK_KEY,
    add_events,
    clean_env,
    free_port,
    store_listing,
    train_store,
    watermark,
)


def options(store: Path, base: Path, url: str, **kw: Any) -> RetrainOptions:
    kw.setdefault("gate_tolerance", 1.0)
    kw.setdefault("train_overrides", {"epochs": 1})
    return RetrainOptions(store=store, base_data=base, redis_url=url, device="cpu", **kw)


def cli(store: Path, base: Path, url: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    argv = [
        "retrain",
        "--artifacts",
        str(store),
        "--data",
        str(base),
        "--redis",
        url,
        "--device",
        "cpu",
        *extra,
    ]
    result = CliRunner().invoke(app, argv)
    assert "Traceback" not in result.stderr, result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


def batch(tag: str, new_users: int = 6) -> list[tuple[str, list[str]]]:
    """Events of new users (with new items tag-sku0..2) and of two base users."""
    events = [
        (
            f"{tag}-u{i}",
            [f"{tag}-sku{i % 3}", str(1 + i), f"{tag}-sku{(i + 1) % 3}", str(10 + i), str(20 + i)],
        )
        for i in range(new_users)
    ]
    return [*events, ("1", [f"{tag}-sku0", "5"]), ("2", ["7"])]


def merged_histories(store: Path, version: str) -> dict[str, list[str]]:
    """STORE/data/VERSION.txt as external ids, user -> history."""
    ids = json.loads((store / version / "items.json").read_text())["ids"]
    data = read_interactions(store / "data" / f"{version}.txt", n_items=len(ids) - 2)
    return {u: [ids[r] for r in data.sequence(i).tolist()] for i, u in enumerate(data.users)}


def base_histories(base: Path) -> dict[str, list[str]]:
    data = read_interactions(base)
    return {u: [str(r) for r in data.sequence(i).tolist()] for i, u in enumerate(data.users)}


def test_events_are_folded_in_exactly_once_across_runs(store: Path, base: Path, redis_url: str) -> None:
    first = batch("a")
    ids_a = add_events(redis_url, first)
    s = retrain(options(store, base, redis_url), log=lambda _: None)
    assert (s.status, s.published, Store(store).current()) == ("published", "v0002", "v0002")
    assert watermark(redis_url) == ids_a[-1] == s.watermark["after"]
    assert s.events["used"] == 8 and s.events["new_users"] == 6 and s.events["new_items"] == 3
    assert s.data["merged"] == str(store / "data" / "v0002.txt")
    art = load_artifact(store)
    assert art.item_ids[:61] == [None, *(str(i) for i in range(1, 61))]  # old rows kept
    assert art.item_ids[61:] == ["a-sku0", "a-sku1", "a-sku2", None]  # new rows, then the mask
    assert art.info.origin["kind"] == "retrained" and art.manifest.parent == "v0001"
    assert set(art.info.popular_items) <= set(art.item_ids[1:-1])
    # intent ids matched to v0001's centers: the summary and the manifest say how many users kept theirs
    assert s.intents["matched"] and s.intents["users"] == 300 + 6 and 0 <= s.intents["users_kept"] <= 1
    assert art.info.origin["intent_ids"] == s.intents and art.info.intent_health is not None

    # Nothing new: a no-op that says so (exit 0) and moves nothing.
    code, summary, _ = cli(store, base, redis_url)
    assert (code, summary["status"], summary["exit_code"]) == (0, "no_new_events", 0)
    assert Store(store).current() == "v0002" and watermark(redis_url) == ids_a[-1]

    # The next run starts from v0002's merged data, not from the base file: every event counted once.
    second = batch("b", new_users=2)
    ids_b = add_events(redis_url, second)
    s = retrain(options(store, base, redis_url), log=lambda _: None)
    assert (s.status, s.published, s.data["base"]) == (
        "published",
        "v0003",
        str(store / "data" / "v0002.txt"),
    )
    assert s.events["from"] == ids_a[-1] and s.events["to"] == ids_b[-1] and s.events["used"] == 4
    assert watermark(redis_url) == ids_b[-1]
    assert json.loads((store / "data" / "v0003.json").read_text())["watermark"] == ids_b[-1]
    merged, original = merged_histories(store, "v0003"), base_histories(base)
    assert len(merged) == 300 + 6 + 2
    assert merged["1"] == original["1"] + ["a-sku0", "5", "b-sku0", "5"]
    assert merged["2"] == original["2"] + ["7", "7"]
    assert merged["3"] == original["3"]
    assert merged["a-u0"] == first[0][1] and merged["b-u1"] == second[1][1]
    assert load_artifact(store).item_ids[61:] == [
        "a-sku0",
        "a-sku1",
        "a-sku2",
        "b-sku0",
        "b-sku1",
        "b-sku2",
        None,
    ]


def test_a_model_of_the_improved_preset_is_retrained_with_its_own_settings(
    base: Path, tmp_path: Path, redis_url: str
) -> None:
    """`--improved` models carry the frequency filter and prefix samples; the retrained candidate keeps both (the
    filter is refused on sequence samples, so losing either one would fail the run)."""
    store = tmp_path / "filter-store"
    train_store(read_interactions(base), store, model={"mix_alpha": 0.7},
                train={"samples": "prefixes", "rec_loss": "softmax", "patience": 10})
    add_events(redis_url, batch("f"))
    s = retrain(options(store, base, redis_url), log=lambda _: None)
    assert (s.status, s.published) == ("published", "v0002")
    art = load_artifact(store)
    assert art.config.mix_alpha == 0.7 and art.manifest.to_json()["model_config"]["mix_alpha"] == 0.7
    settings = art.info.origin["train_config"]
    assert (settings["samples"], settings["rec_loss"], settings["patience"]) == ("prefixes", "softmax", 10)
    assert art.item_ids[61:] == ["f-sku0", "f-sku1", "f-sku2", None]


def test_a_worse_candidate_is_not_published(
    store: Path, base: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_events(redis_url, batch("a"))
    before = store_listing(store)
    train = job.train_candidate

    def reversed_ranking(*args: Any, **kwargs: Any) -> Any:
        model, info = train(*args, **kwargs)
        with torch.no_grad():
            model.item_embeddings.weight.neg_()  # every ranking upside down: a much worse model
        return model, info

    monkeypatch.setattr(job, "train_candidate", reversed_ranking)
    code, s, err = cli(store, base, redis_url, "--epochs", "1")  # default tolerance 0.02
    assert (code, s["status"], s["published"]) == (3, "gated", None)
    assert s["gate"]["candidate"] < s["gate"]["threshold"] and not s["gate"]["passed"]
    assert "not published" in s["message"] and "v0001 stays live" in err
    assert store_listing(store) == before and Store(store).current() == "v0001"
    assert watermark(redis_url) is None and s["watermark"] == {"before": None, "after": None}

    # A tolerance below zero asks for an improvement the candidate cannot show.
    monkeypatch.setattr(job, "train_candidate", train)
    code, s, _ = cli(store, base, redis_url, "--epochs", "1", "--gate-tolerance", "-10")
    assert (code, s["status"]) == (3, "gated") and s["gate"]["threshold"] > 10 * s["gate"]["candidate"]
    assert store_listing(store) == before and watermark(redis_url) is None

    # The events were not consumed: a run that passes the gate still gets them all.
    code, s, _ = cli(store, base, redis_url, "--epochs", "1", "--gate-tolerance", "1.0")
    assert (code, s["status"], s["published"], s["events"]["used"]) == (0, "published", "v0002", 8)


def test_interrupted_training_leaves_nothing_behind(
    store: Path, base: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = add_events(redis_url, batch("a"))
    before = store_listing(store)
    step, calls = Trainer.step, []

    def dies(self: Trainer, idx: np.ndarray) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a Ctrl-C or a kill would, in the middle of an epoch
        return step(self, idx)

    monkeypatch.setattr(Trainer, "step", dies)
    with pytest.raises(KeyboardInterrupt):
        retrain(options(store, base, redis_url), log=lambda _: None)
    assert (
        store_listing(store) == before and Store(store).current() == "v0001" and watermark(redis_url) is None
    )

    monkeypatch.setattr(Trainer, "step", step)
    s = retrain(options(store, base, redis_url), log=lambda _: None)  # the lock was released
    assert (s.status, s.published) == ("published", "v0002") and watermark(redis_url) == ids[-1]


@pytest.mark.parametrize("stage", ["before CURRENT", "before watermark"])
def test_interrupted_while_publishing_the_next_run_recovers(
    stage: str, store: Path, base: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = batch("a")
    ids = add_events(redis_url, events)

    def killed(*_: Any) -> None:
        raise KeyboardInterrupt

    if stage == "before CURRENT":
        monkeypatch.setattr(Store, "set_current", killed)
    else:
        monkeypatch.setattr(EventLog, "set_watermark", killed)
    with pytest.raises(KeyboardInterrupt):
        retrain(options(store, base, redis_url), log=lambda _: None)
    assert Store(store).versions() == ["v0001", "v0002"] and Store(store).merged_versions() == ["v0002"]
    assert Store(store).current() == ("v0001" if stage == "before CURRENT" else "v0002")
    assert watermark(redis_url) is None
    monkeypatch.undo()

    # The watermark never moved, so the next run starts again from the base file and reads every event:
    # v0002's merged data (cut at another watermark) is not chosen, and nothing is counted twice.
    s = retrain(options(store, base, redis_url), log=lambda _: None)
    assert (s.status, s.published, s.data["base"]) == ("published", "v0003", str(base))
    assert Store(store).current() == "v0003" and watermark(redis_url) == ids[-1]
    merged, original = merged_histories(store, "v0003"), base_histories(base)
    assert merged["1"] == original["1"] + ["a-sku0", "5"] and merged["a-u2"] == events[2][1]
    assert len(merged) == 306


def test_a_killed_process_publishes_nothing_and_stale_temporaries_are_cleaned(
    store: Path, base: Path, redis_url: str
) -> None:
    ids = add_events(redis_url, batch("a"))
    before = store_listing(store)
    argv = [str(ELCREC_CLI), "retrain", "--artifacts", str(store), "--data", str(base), "--redis", redis_url]
    argv += ["--device", "cpu", "--epochs", "500", "--patience", "500", "--gate-tolerance", "1"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()
    ) as proc:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the job logs each epoch on stderr
            seen.append(line)
            if line.startswith("epoch"):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=30)
    assert any(line.startswith("epoch") for line in seen), "".join(seen)
    assert proc.returncode == -signal.SIGKILL
    assert (
        store_listing(store) == before and Store(store).current() == "v0001" and watermark(redis_url) is None
    )

    # What a kill inside write_version leaves: a .tmp-* directory. Ignored, and removed once stale.
    stale, fresh = store / ".tmp-killed", store / ".tmp-in-progress"
    for d in (stale, fresh):
        d.mkdir()
        (d / "weights.safetensors").write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    s = retrain(options(store, base, redis_url), log=lambda _: None)
    assert (s.status, s.published) == ("published", "v0002") and watermark(redis_url) == ids[-1]
    assert not stale.exists() and fresh.exists()  # another writer may still own a fresh one


def test_an_empty_stream_is_a_no_op(store: Path, base: Path, redis_url: str) -> None:
    before = store_listing(store)
    code, s, err = cli(store, base, redis_url)
    assert (code, s["status"], s["exit_code"], s["published"]) == (0, "no_new_events", 0, None)
    assert s["current"] == "v0001" and s["events"] == {"from": None, "to": None, "read": 0}
    assert "no events" in s["message"] and "no events" in err
    assert store_listing(store) == before and watermark(redis_url) is None

    # Entries that are not events are not training data: still no new events, and nothing moves.
    with redis.Redis.from_url(redis_url) as r:
        r.xadd("elcrec:events", {"user": "u", "items": "not json"})
    code, s, _ = cli(store, base, redis_url)
    assert (code, s["status"], s["events"]["skipped"]) == (0, "no_new_events", 1)
    assert store_listing(store) == before and watermark(redis_url) is None


def test_bad_input_and_unavailable_redis_exit_with_clear_messages(
    store: Path, base: Path, redis_url: str, tmp_path: Path
) -> None:
    def fails(
        code: int, fragment: str, *args: str, where: Path = store, data: Path = base, url: str = redis_url
    ) -> None:
        got, s, err = cli(where, data, url, *args)
        assert (got, s["exit_code"], s["published"]) == (code, code, None), s
        assert fragment in s["message"] and fragment in err, (s["message"], err)

    fails(2, "does not exist", where=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    fails(2, "no CURRENT version", where=tmp_path / "empty")
    fails(2, "does not exist", data=tmp_path / "missing.txt")
    fails(2, "at most 1", "--gate-tolerance", "1.5")
    fails(2, "device must be", "--device", "tpu")
    fails(2, "not a Redis URL", url="http://localhost:1")
    fails(4, "Redis at", url=f"redis://127.0.0.1:{free_port()}/0")
    with redis.Redis.from_url(redis_url) as r:
        r.set(WATERMARK_KEY, "garbage")
        fails(2, "not a stream id")
        r.set(WATERMARK_KEY, "1-0")
        add_events(redis_url, batch("a"))
        fails(2, f"delete the Redis key {WATERMARK_KEY}")
        r.delete(WATERMARK_KEY)
    (tmp_path / "bad.txt").write_text("u1 1 2 x\n")
    fails(2, "is not an integer", data=tmp_path / "bad.txt")
    with open(store / ".retrain.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # another retrain at work
        fails(4, "another elcrec retrain is running")
    assert Store(store).current() == "v0001" and len(list(store.glob("v*"))) == 1


def test_events_trimmed_from_the_stream_before_a_run_are_counted(
    store: Path, base: Path, redis_url: str
) -> None:
    ids = add_events(redis_url, batch("a"))  # 8 entries
    with redis.Redis.from_url(redis_url) as r:
        r.xtrim("elcrec:events", maxlen=3, approximate=False)  # as a service with a small MAXLEN would
    s = retrain(options(store, base, redis_url), log=lambda _: None)
    assert (s.status, s.events["used"], s.events["lost_before_read"]) == ("published", 3, 5)
    more = add_events(redis_url, batch("b", new_users=1))
    s = retrain(options(store, base, redis_url), log=lambda _: None)
    assert (s.events["from"], s.events["to"]) == (ids[-1], more[-1])
    assert (s.events["used"], s.events["lost_before_read"]) == (3, 0)


def test_a_version_published_by_someone_else_meanwhile_is_not_overwritten(
    store: Path, base: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_events(redis_url, batch("a"))
    train = job.train_candidate

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        out = train(*args, **kwargs)
        shutil.copytree(store / "v0001", store / "v0002")  # e.g. an `elcrec train` run finishing now
        Store(store).set_current("v0002")
        return out

    monkeypatch.setattr(job, "train_candidate", meanwhile)
    code, s, _ = cli(store, base, redis_url, "--epochs", "1", "--gate-tolerance", "1")
    assert (code, s["status"], s["published"]) == (3, "superseded", None)
    assert "CURRENT moved from v0001 to v0002" in s["message"]
    assert Store(store).current() == "v0002" and watermark(redis_url) is None


def test_a_watermark_that_cannot_be_stored_leaves_a_published_version_and_no_double_count(
    store: Path, base: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = batch("a")
    ids = add_events(redis_url, events)

    def redis_gone(*_: Any) -> None:
        raise job.RetrainUnavailable("Redis at ... failed while storing the watermark: ConnectionError")

    monkeypatch.setattr(EventLog, "set_watermark", redis_gone)
    code, s, _ = cli(store, base, redis_url, "--epochs", "1", "--gate-tolerance", "1")
    assert (code, s["status"], s["published"]) == (0, "published", "v0002")
    assert "the watermark was not stored" in s["message"] and s["watermark"]["after"] is None
    monkeypatch.undo()
    s = retrain(options(store, base, redis_url), log=lambda _: None)
    assert (s.published, s.data["base"], watermark(redis_url)) == ("v0003", str(base), ids[-1])
    assert merged_histories(store, "v0003")["1"] == base_histories(base)["1"] + ["a-sku0", "5"]


def test_a_balanced_version_is_followed_and_its_intents_accounted_for(
    base: Path, redis_url: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    train_store(read_interactions(base), store, train={"intent_loss": "balanced", "intent_settle": 5})
    add_events(redis_url, batch("f"))
    lines: list[str] = []
    s = retrain(options(store, base, redis_url), log=lines.append)
    assert s.status == "published"
    # the live version's centers were carried into the new encoder's space instead of settled again, and the ids
    # read as the service reads them held
    following = s.train["intent_following"]
    assert following["from"] == "v0001" and 0 < following["states_aligned"] <= 1 and "intent_settling" not in s.train
    assert following["valid_after"]["intents"] == 3 and following["valid_before"]["intents"] == 3
    assert s.intents["previous"] == "v0001" and s.intents["users_kept"] >= 0.9 and s.intents["min_similarity"] > 0.99
    report = s.intents["intents"]
    old = load_artifact(store / "v0001").info.intent_shares
    accounted = report["kept"] + len(report["renumbered"]) + sum(len(m["from"]) for m in report["merged"])
    assert accounted + len(report["dissolved"]) == sum(1 for share in old if share > 0)
    assert load_artifact(store).info.origin["intent_ids"] == s.intents
    assert any(line.startswith("intent ids kept by") and f"intents kept {report['kept']}," in line for line in lines)
