"""Answers already computed by one model version, kept for repeat requests.

A user's state changes only when an event arrives, and what the service answers for a history is a pure function
of the version and the query (the same items in the same order, the same k, exclusions, intents and steering).
Most traffic repeats: a page shown again, several surfaces asking for the same user. A hit skips the encoder, the
intents and the retrieval. The key is the query's content, not the user, so nothing needs invalidating: an event
changes the history read from Redis and with it the key, on every replica alike. One cache lives on each loaded
version (`ModelBundle.answers`) and goes with it at a swap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence, Set
from typing import Any

import numpy as np

from elcrec.service.queries import NOT_IN_KEY, Answer, Query

Key = tuple[Any, ...]


_KEY_FIELDS: dict[type[Query], tuple[str, ...]] = {}


def _key_fields(kind: type[Query]) -> tuple[str, ...]:
    """Every field of the query type but those it declares not to change an answer (metadata NOT_IN_KEY): a field
    added to Query is in the key without anyone editing this module."""
    names = _KEY_FIELDS.get(kind)
    if names is None:
        names = _KEY_FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind) if not f.metadata.get(NOT_IN_KEY))
    return names


def _packed(value: Any, query: Query) -> Any:
    """A field's value as a hashable the garbage collector does not track (bytes, numbers, tuples of them)."""
    if isinstance(value, Set):
        # The usual exclusion is the history itself: one flag instead of a second copy of it.
        if len(value) and value == frozenset(query.rows):
            return b"="
        value = sorted(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        packed = np.asarray(value)
        if packed.dtype.kind in "iu":  # item rows: int32 bytes, a few hundred bytes an entry, not kilobytes of ints
            return packed.astype(np.int32, copy=False).tobytes()
        return tuple(value)
    return value


def key_of(query: Query) -> Key:
    """The query's content: every field of it but those declared NOT_IN_KEY, packed."""
    return tuple(_packed(getattr(query, name), query) for name in _key_fields(type(query)))


# An answer as a tuple of tuples of numbers: objects the garbage collector stops tracking, so that a full cache
# (tens of thousands of answers) adds nothing to its passes. Kept as Answer objects (lists inside), a full cache
# made every full collection scan all of them and slowed the requests that missed it (measured: docs/SERVING.md,
# *Load figures*, "A full cache must cost the collector nothing").
Packed = tuple[tuple[int, ...], tuple[float, ...], tuple[int, ...], tuple[float, ...], tuple[float, ...],
               tuple[int, ...], int]


def pack(answer: Answer) -> Packed:
    return (tuple(answer.rows), tuple(answer.scores), tuple(answer.intent_ids), tuple(answer.intent_distances),
            tuple(answer.intent_probabilities), tuple(answer.drivers), answer.excluded)


class AnswerCache:
    """Least recently used answers, at most `capacity` of them (0: nothing is kept). A plain dict in use order
    (a hit moves its entry to the end): with untracked keys and values the dict itself is untracked too, which an
    OrderedDict never is."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._answers: dict[Key, Packed] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: Key) -> Answer | None:
        packed = self._answers.pop(key, None)
        if packed is None:
            return None
        self._answers[key] = packed  # now the most recent
        rows, scores, ids, distances, probabilities, drivers, excluded = packed
        return Answer(list(rows), list(scores), list(ids), list(distances), list(probabilities), list(drivers),
                      excluded)

    def put(self, key: Key, answer: Answer) -> None:
        if self.capacity <= 0:
            return
        self._answers.pop(key, None)
        self._answers[key] = pack(answer)
        while len(self._answers) > self.capacity:
            del self._answers[next(iter(self._answers))]  # the least recently used
