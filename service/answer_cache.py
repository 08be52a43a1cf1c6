"""Answers already computed by one model version, kept for repeat requests.

A user's state changes only when an event arrives, and what the service answers for a history is a pure function
of the version and the query (the same items in the same order, the same k, exclusions, intents and steering).
Most traffic repeats: a page shown again, several surfaces asking for the same user. A hit skips the encoder, the
intents and the retrieval. The key is the query's content, not the user, so nothing needs invalidating: an event
changes the history read from Redis and with it the key, on every replica alike. One cache lives on each loaded
version (`ModelBundle.answers`) and goes with it at a swap.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from service.inference import Answer, Query

Key = tuple[bytes, bytes, int, int, int, bool, float]


def key_of(query: Query) -> Key:
    """The query's content, packed (int32 bytes for the item rows and the sorted exclusions: a few hundred bytes
    an entry instead of kilobytes of Python ints)."""
    rows = np.asarray(query.rows, dtype=np.int32).tobytes()
    # The usual exclusion is the history itself: one flag instead of a second copy of it.
    exclude = b"=" if len(query.exclude) and query.exclude == frozenset(query.rows) else (
        np.asarray(sorted(query.exclude), dtype=np.int32).tobytes()
    )
    steer = -1 if query.steer is None else query.steer
    return rows, exclude, query.k, query.intents, steer, query.diversify, query.steer_weight


class AnswerCache:
    """Least recently used answers, at most `capacity` of them (0: nothing is kept)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[Key, Answer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: Key) -> Answer | None:
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: Key, answer: Answer) -> None:
        if self.capacity <= 0:
            return
        self._answers[key] = answer
        self._answers.move_to_end(key)
        while len(self._answers) > self.capacity:
            self._answers.popitem(last=False)
