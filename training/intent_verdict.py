"""What training says of the intents it learned: one line of their health (training/intent_health.py, as the
manifest records it on the test users), and, where they collapsed, a warning that says what to do about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elcrec.training.intent_count import intents_for

# Collapsed: an effective number below a tenth of K, most users in a few intents: what ELCM does on the benchmarks and
# on a real log, where the balanced loss stays near K (docs/research/INTENTS-NOTES.md).
COLLAPSED_SHARE = 0.1


def health_line(health: dict[str, Any]) -> str:
    """'intents (test users): 12 of 256 used, effective 3.8, largest 61%, overlap 0.0210, lift@100 1.53'."""
    def maybe(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    return (f"intents ({health['users']} test users): {health['used']} of {health['intents']} used, effective "
            f"{health['effective']:.1f}, largest {health['largest']:.0%}, overlap {maybe(health['overlap'], '.4f')}, "
            f"lift@100 {maybe(health['lift'], '.2f')}")


def collapsed(health: dict[str, Any]) -> bool:
    return float(health["effective"]) < COLLAPSED_SHARE * int(health["intents"])


def collapse_warning(health: dict[str, Any], intent_loss: str, preset: str | None, store: Path, data: Path,
                     users: int) -> str | None:
    """None unless the intents collapsed; else what happened and what to do, for the loss that was used."""
    if not collapsed(health):
        return None
    k = int(health["intents"])
    fewer = intents_for(users)
    if fewer >= k:
        fewer = max(2, k // 4)
    fit = f"elcrec intents fit {store} --data {data} --k {fewer}"
    what = (f"warning: the intents collapsed: effective number {health['effective']:.1f} of K = {k} "
            f"({health['used']} used, the largest holds {health['largest']:.0%} of the users), so they say little "
            "about a user.")
    if intent_loss == "elcm":
        via = f"--preset {preset} trains it" if preset else "--intent-loss elcm"
        return (f"{what} ELCM, the paper's intent loss ({via}), pulls every user towards the mean of all centers "
                "and does this on most data. Train with --intent-loss balanced (the default without --preset), or "
                f"keep this model and give it intents fitted after training (the same recommendations): {fit}")
    return (f"{what} Even the balanced loss could not keep {k} intents apart on {users} users: train with fewer "
            f"(--intents {fewer}), or keep this model and fit intents after training (the same recommendations): "
            f"{fit}")
