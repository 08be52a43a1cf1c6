"""How many intents K a run learns, and the record of how K was chosen (the manifest's `origin.intent_count`).

K comes from `--intents` where given, else from the preset, else from the data: the power of two nearest (on a log
scale) to users / USERS_PER_INTENT, clamped to [MIN_INTENTS, MAX_INTENTS]. USERS_PER_INTENT is measured
(bench/intent_k.py; the table and the commands: docs/research/INTENTS-NOTES.md, *How many intents without a
preset*): with the
balanced loss of a default run (at weight 1, before the default became 0.1), the K that kept the effective number at
K/2 or more with the best lift@100 on the validation users, without costing validation NDCG, per log;
USERS_PER_INTENT is the power of two nearest the geometric mean of the logs' users per kept intent. Too few users an
intent and an intent's profile (its users' mean state) is noise; too many and the intents are coarse, each covering
several kinds of user.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

USERS_PER_INTENT = 64
MIN_INTENTS = 8
MAX_INTENTS = 256

RULE = (f"the power of two nearest users / {USERS_PER_INTENT}, within [{MIN_INTENTS}, {MAX_INTENTS}] "
        "(training/intent_count.py)")

ChosenBy = Literal["--intents", "preset", "rule"]


@dataclass(frozen=True)
class IntentCount:
    k: int
    chosen_by: ChosenBy
    users: int  # the training file's users, the rule's input
    rule: str | None = None  # the rule's wording, where the rule chose K

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        """One line for the training log and the report."""
        if self.chosen_by == "rule":
            return f"K = {self.k} intents from the data: {self.users} users, {self.rule}"
        if self.chosen_by == "preset":
            return f"K = {self.k} intents, the preset's"
        return f"K = {self.k} intents, as --intents said"


def intents_for(users: int) -> int:
    """The rule: the power of two nearest users / USERS_PER_INTENT (log scale), clamped to [MIN, MAX], and never
    more intents than users (the centers start as a k-means of the users' states)."""
    if users < 1:
        raise ValueError(f"no users to choose a number of intents for (got {users})")
    k = 2 ** round(math.log2(max(users / USERS_PER_INTENT, 1.0)))
    return min(users, max(MIN_INTENTS, min(MAX_INTENTS, k)))


def choose_intents(flag: int | None, preset_k: int | None, users: int) -> IntentCount:
    """K and how it was chosen: `--intents` (flag) first, then the preset's K, then the rule on `users`."""
    if flag is not None:
        return IntentCount(flag, "--intents", users)
    if preset_k is not None:
        return IntentCount(preset_k, "preset", users)
    return IntentCount(intents_for(users), "rule", users, RULE)


def describe_record(record: Any) -> str | None:
    """The line of IntentCount.describe from a manifest's `origin.intent_count` (None where the version has none:
    trained before the record existed, or not trained by `elcrec train`)."""
    if not isinstance(record, dict):
        return None
    try:
        return IntentCount(int(record["k"]), record["chosen_by"], int(record["users"]), record.get("rule")).describe()
    except (KeyError, TypeError, ValueError):
        return None
