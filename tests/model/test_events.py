"""The events contract (model/events.py): the id rule, the stream entry's encoding, the Redis keys of one Redis and
of a Redis Cluster, and the two sides (the service writing, the retraining job reading) agreeing through it."""

from __future__ import annotations

import re

import pytest
import redis
from redis.crc import key_slot

from elcrec.model.events import (
    CLUSTER,
    CLUSTER_SHARDS,
    EVENTS_STREAM,
    ID_PATTERN,
    MAX_ID_LENGTH,
    SINGLE,
    Layout,
    decode_event,
    encode_event,
    history_key,
    layout_for,
    valid_id,
)
from elcrec.service.history import RedisHistory
from elcrec.service.metrics import Metrics
from elcrec.training.event_log import EventLog

USERS = [f"user-{n}" for n in range(200)] + ["{brace}", "a}b{c", "{}", "x{y}z", "!", "~" * MAX_ID_LENGTH]


# -- the id rule ---------------------------------------------------------------------------------------------


def test_an_id_is_one_to_128_visible_ascii_characters():
    assert valid_id("a") and valid_id("sku-12/x:{y}") and valid_id("~" * MAX_ID_LENGTH)
    for bad in ["", "a" * (MAX_ID_LENGTH + 1), "a b", "a\tb", "é", "a\n", "\na", "\x7f", 5, None, ["a"]]:
        assert not valid_id(bad), repr(bad)


def test_the_published_pattern_is_exactly_the_rule():
    """The OpenAPI pattern and valid_id agree on every character and at the length limits, so a client that
    generates ids from the schema is never refused (the pattern's `$` is the end of the text, as in JSON Schema)."""
    for code in range(256):
        c = chr(code)
        assert valid_id(c) == (re.fullmatch(ID_PATTERN, c) is not None) == (33 <= code <= 126), code
    for n in (1, MAX_ID_LENGTH, MAX_ID_LENGTH + 1):
        assert valid_id("x" * n) == (re.fullmatch(ID_PATTERN, "x" * n) is not None) == (n <= MAX_ID_LENGTH)


# -- the stream entry ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("user, items", [("u1", ["a"]), ("{x}", ["i1", "~" * MAX_ID_LENGTH, "a\"b", "[1]"])])
def test_an_event_reads_back_as_written(user, items):
    fields = encode_event(user, items)
    assert set(fields) == {"user", "items"} and all(isinstance(v, str) for v in fields.values())
    assert decode_event(fields) == (user, items)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"user": "u"},
        {"items": '["a"]'},
        {"user": "", "items": '["a"]'},
        {"user": "a b", "items": '["a"]'},
        {"user": "u", "items": "not json"},
        {"user": "u", "items": '"a"'},
        {"user": "u", "items": '{"a": 1}'},
        {"user": "u", "items": "[]"},
        {"user": "u", "items": "[1, 2]"},
        {"user": "u", "items": '["a", "b c"]'},
        {"user": "u", "items": '["a", null]'},
    ],
)
def test_an_entry_the_service_would_not_write_is_not_an_event(fields):
    assert decode_event(fields) is None


# -- the keys --------------------------------------------------------------------------------------------------


def test_one_redis_keeps_every_user_in_the_plain_keys():
    assert not SINGLE.cluster and SINGLE.streams() == [EVENTS_STREAM]
    for user in USERS:
        assert SINGLE.history_key(user) == history_key(user) == "elcrec:hist:" + user
        assert SINGLE.stream_of(user) == EVENTS_STREAM


def test_on_a_cluster_a_users_history_shares_the_slot_of_the_users_stream():
    """One script writes both keys, which Redis Cluster allows only within one hash slot; braces in a user id
    must not move the history elsewhere."""
    assert CLUSTER.cluster and CLUSTER.shards == CLUSTER_SHARDS
    for user in USERS:
        assert key_slot(CLUSTER.history_key(user).encode()) == key_slot(CLUSTER.stream_of(user).encode()), user
        assert CLUSTER.stream_of(user) in CLUSTER.streams()


def test_on_a_cluster_the_events_spread_over_streams_in_distinct_slots():
    streams = CLUSTER.streams()
    assert len(streams) == CLUSTER_SHARDS == len({key_slot(s.encode()) for s in streams})
    assert {CLUSTER.stream_of(user) for user in USERS} == set(streams)
    assert all(CLUSTER.shard_of(u) == Layout(CLUSTER_SHARDS).shard_of(u) for u in USERS)  # no state: both sides agree


def test_the_layout_follows_what_the_server_says(redis_url):
    db = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert layout_for(db.info("cluster")) == SINGLE
    finally:
        db.close()
    assert layout_for({"cluster_enabled": 1}) == layout_for({"cluster_enabled": "1"}) == CLUSTER
    assert layout_for({"cluster_enabled": 0}) == layout_for({}) == SINGLE


# -- both sides ------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_what_the_service_writes_the_retraining_job_reads(redis_url):
    written = [("alice", ["i4", "i8"]), ("{bob}", ["x/1"]), ("alice", ["i15"])]
    history = RedisHistory(redis_url, timeout_s=2.0, max_connections=2, metrics=Metrics())
    try:
        for user, items in written:
            await history.append(user, items, cap=50)
    finally:
        await history.close()
    log = EventLog(redis_url)
    try:
        log.ping()
        upto, added = log.snapshot()
        assert upto is not None and added in (len(written), None)
        assert [decode_event(fields) for _, fields in log.read(None, upto)] == written
    finally:
        log.close()
