"""The events contract between the service (which writes) and the retraining job (which reads), defined once.

Redis layout:
    elcrec:hist:{user_id}       list of item ids, oldest first, capped to the most recent T (the service)
    elcrec:events               stream; entry fields `user` (an id) and `items` (JSON array of ids)
    elcrec:retrain:watermark    the last stream entry folded into a published version (the retraining job)

Ids (users and items) are 1 to 128 visible ASCII characters: the OpenAPI pattern is then exactly the rule enforced
(a fuzzer or client generating from the schema agrees with the service), and ids stay safe as Redis key suffixes,
in logs and in shells. It lives beside the model because both the service and training import this layer.
"""

from __future__ import annotations

import json
import re
from typing import Any

HISTORY_PREFIX = "elcrec:hist:"
EVENTS_STREAM = "elcrec:events"
WATERMARK_KEY = "elcrec:retrain:watermark"

MAX_ID_LENGTH = 128
ID_PATTERN = f"^[!-~]{{1,{MAX_ID_LENGTH}}}$"
_ID = re.compile(ID_PATTERN)
ID_RULE = "ids must be 1 to 128 visible ASCII characters: no whitespace, control or non-ASCII characters"


def valid_id(value: Any) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def history_key(user_id: str) -> str:
    # User ids follow the id rule and only ever suffix this fixed prefix.
    return HISTORY_PREFIX + user_id


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
