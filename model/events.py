"""The events contract between the service (which writes) and the retraining job (which reads), defined once.

Redis layout, one Redis (or a primary with replicas, Sentinel):
    elcrec:hist:<user_id>       list of item ids, oldest first, capped to the most recent T (the service)
    elcrec:events               stream; entry fields `user` (an id) and `items` (JSON array of ids)
    elcrec:retrain:watermark    the last stream entry folded into a published version (the retraining job)

Redis Cluster (found by asking the server, `INFO cluster`): the events are sharded over CLUSTER_SHARDS streams so
that no one node takes every write, and a user's history lives in the slot of the user's stream (one hash tag) so
that the history and the event are still stored together by one script:
    elcrec:{e<s>}:hist:<user_id>    s = crc32(user_id) mod CLUSTER_SHARDS
    elcrec:{e<s>}:events
    elcrec:retrain:watermark        one key: the last entry folded in of every shard, "s=id,s=id,..."

Ids (users and items) are 1 to 128 visible ASCII characters: the OpenAPI pattern is then exactly the rule enforced
(a fuzzer or client generating from the schema agrees with the service), and ids stay safe as Redis key suffixes,
in logs and in shells. It lives beside the model because both the service and training import this layer.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

HISTORY_PREFIX = "elcrec:hist:"
EVENTS_STREAM = "elcrec:events"
WATERMARK_KEY = "elcrec:retrain:watermark"
# Streams of the events in a Redis Cluster: their hash slots fall on the masters about evenly up to a dozen or so
# masters; fixed, because the service and the retraining job must agree without being told.
CLUSTER_SHARDS = 16

MAX_ID_LENGTH = 128
ID_PATTERN = f"^[!-~]{{1,{MAX_ID_LENGTH}}}$"
_ID = re.compile(ID_PATTERN)
ID_RULE = "ids must be 1 to 128 visible ASCII characters: no whitespace, control or non-ASCII characters"


def valid_id(value: Any) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


@dataclass(frozen=True)
class Layout:
    """Where a user's history and events live: `shards` 0 on one Redis (the plain keys), CLUSTER_SHARDS on a
    Redis Cluster."""

    shards: int = 0

    @property
    def cluster(self) -> bool:
        return self.shards > 0

    def shard_of(self, user_id: str) -> int:
        return zlib.crc32(user_id.encode()) % self.shards if self.shards else 0

    def history_key(self, user_id: str) -> str:
        # User ids follow the id rule and only ever suffix a fixed prefix (after the hash tag, which Redis takes
        # from the first braces: a brace in a user id does not move the key).
        if not self.shards:
            return HISTORY_PREFIX + user_id
        return f"elcrec:{{e{self.shard_of(user_id)}}}:hist:{user_id}"

    def stream_of(self, user_id: str) -> str:
        return self.stream(self.shard_of(user_id))

    def stream(self, shard: int) -> str:
        return f"elcrec:{{e{shard}}}:events" if self.shards else EVENTS_STREAM

    def streams(self) -> list[str]:
        return [self.stream(s) for s in range(self.shards)] if self.shards else [EVENTS_STREAM]


SINGLE = Layout()
CLUSTER = Layout(CLUSTER_SHARDS)


def layout_for(cluster_info: dict[str, Any]) -> Layout:
    """The layout of the server that answered `INFO cluster` with `cluster_info`."""
    return CLUSTER if str(cluster_info.get("cluster_enabled", 0)) == "1" else SINGLE


def history_key(user_id: str) -> str:
    """The key of a user's history on one Redis."""
    return SINGLE.history_key(user_id)


def encode_event(user_id: str, items: list[str]) -> dict[str, str]:
    """The stream entry's fields for one event."""
    return {"user": user_id, "items": json.dumps(items)}


def decode_event(fields: dict[str, str]) -> tuple[str, list[str]] | None:
    """A stream entry -> (user, items), or None when it is not an event the service writes."""
    user, raw = fields.get("user"), fields.get("items")
    if not valid_id(user) or raw is None:
        return None
    try:
        items = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(items, list) or not items or not all(valid_id(i) for i in items):
        return None
    return str(user), items
