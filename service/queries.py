"""What a micro-batch is asked (Query) and answers (Answer): the types the engine, the inference, the answer cache
and the recommender share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Metadata of a Query field that does not change the answer (none so far), so that the answer cache leaves it out of
# its key (service/answer_cache.py); every other field is in the key: field(default=..., metadata={NOT_IN_KEY: True}).
NOT_IN_KEY = "not_in_answer_key"


@dataclass(frozen=True, slots=True)
class Query:
    rows: Sequence[int]  # known item rows, oldest first, not empty
    k: int  # items wanted; 0 = intent only
    exclude: frozenset[int]  # rows never to return
    intents: int = 1  # nearest intents wanted
    steer: int | None = None  # rank towards this intent (its characteristic direction added to the user's)
    diversify: bool = False  # spread the k items over the `intents` nearest intents, by their probabilities
    steer_weight: float = 1.0  # of an intent's direction against the user's own unit vector (Settings.intent_steer)


@dataclass(frozen=True, slots=True)
class Answer:
    rows: list[int]
    scores: list[float]
    intent_ids: list[int]
    intent_distances: list[float]
    intent_probabilities: list[float]  # of each intent in intent_ids, over all K (model.intents.intent_distribution)
    drivers: list[int]  # history rows whose states lie closest to the top intent's center, closest first
    excluded: int  # seen items that would otherwise have been returned
    # The intent each row serves, in a steered or diversified answer; None in a plain one.
    served: list[int] | None = None
