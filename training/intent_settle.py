"""The last stage of balanced intent training: the centers alone, on the final encoder's states.

During training the centers chase a moving encoder, and what is kept is not the last step: early stopping restores
the best epoch, and with `ema` the exported weights are a moving average over about 1/(1 - ema) steps, centers
included, so that the kept centers are an average of where the centers were, not a fit of the kept encoder's states.
Each batch's balanced (Sinkhorn) targets are also coarse: with B = 256 rows and K >= 256 centers, a batch must give
each center at most one row. Settling runs the same objective (losses.balanced_clustering, the training's
temperature) for a number of epochs over the normalised pooled states of the users' training sequences, with the
encoder frozen and batches large enough that each center receives several rows of each.

Settled centers can still be worse than the trained ones on a data set (on one, read early in training, they
were), and no single measure of intent health says which is better: settling can make the intents more distinct at
the cost of a little lift. So training keeps the settled centers only where they are at least as good on at least
two of the three measures on the validation users (settle_model). The measurements on the four benchmark files,
against a k-means of the same states, with their commands: docs/research/INTENTS-NOTES.md, *Settling the centers*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from elcrec.model.encoder import ELCRec
from elcrec.training.data import EvalSplit, Interactions
from elcrec.training.intent_health import IntentHealth, calibrate, split_health, training_states
from elcrec.training.losses import balanced_clustering

# Rows of each balanced assignment while settling: several a center at the benchmarks' K, where a training batch
# of 256 rows gives each center at most one (the gain, measured: docs/research/INTENTS-NOTES.md, *What the balanced
# intents cost in ranking*).
SETTLE_BATCH = 4096
SETTLE_LR = 1e-3
# At most this many steps however many epochs are asked for: a pass over a small log is one step (MovieLens 100K:
# 1,000 epochs, 1,000 steps), over a log of millions of users a thousand, and settling is not to outlast training.
SETTLE_MAX_STEPS = 10_000
# better_settled's tie: differences under 1% of a measure. Measured exactly, an effective number of 15.988 against
# 15.981 of 16 refused centers 0.12-0.16 better in lift@100 on the test users, and a lift of 3.896 against
# 3.892 refused centers half as concentrated again; the measures vary more than that from one seed to the next
# (docs/research/INTENTS-NOTES.md, *MovieLens 100K: centers chosen after training*).
TIE = 0.01
# Settled centers that spread the users over at least half of the K intents (effective number >= K / 2, the spread
# the defaults promise) where the trained ones did not are kept, unless they lose more than this share of the
# trained lift@100: the vote alone refused such centers on a synthetic log, for a little lift
# (docs/research/INTENTS-NOTES.md, *Defaults without a preset*).
SPREAD_LIFT_LOSS = 0.05


def settle_centers(
    states: torch.Tensor, centers: torch.Tensor, epochs: int, temperature: float, seed: int = 1,
    batch_size: int = SETTLE_BATCH, lr: float = SETTLE_LR, max_steps: int = SETTLE_MAX_STEPS,
) -> torch.Tensor:
    """Centers (K, d) trained for `epochs` passes over normalised states (U, d) with the balanced loss, the states
    fixed, or `max_steps` steps where those come first: the normalised centers (K, d). epochs 0 returns the centers
    normalised, unchanged otherwise."""
    if epochs < 0:
        raise ValueError(f"settling epochs must be >= 0, got {epochs}")
    if len(states) == 0:
        raise ValueError("no training states to settle the intent centers on")
    states = F.normalize(states.float(), dim=-1)
    weights = torch.nn.Parameter(F.normalize(centers.detach().float().clone(), dim=-1))
    optimizer = torch.optim.Adam([weights], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    steps = 0
    for _ in range(epochs):
        order = torch.randperm(len(states), generator=gen)
        for start in range(0, len(order), batch_size):
            if steps == max_steps:
                return F.normalize(weights.detach(), dim=-1)
            steps += 1
            loss, _ = balanced_clustering(states[order[start : start + batch_size]], F.normalize(weights, dim=-1), 1.0,
                                          temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return F.normalize(weights.detach(), dim=-1)


@dataclass(frozen=True)
class Settling:
    """What settle_model did: the centers to keep, and the validation health of the calibrated centers before and
    after settling."""

    centers: torch.Tensor
    kept: str  # "settled" or "trained"
    before: IntentHealth
    after: IntentHealth

    def to_dict(self, epochs: int) -> dict[str, Any]:
        return {"epochs": epochs, "kept": self.kept, "valid_before": self.before.to_dict(),
                "valid_after": self.after.to_dict()}


def settle_model(
    model: ELCRec, data: Interactions, valid: EvalSplit, epochs: int, temperature: float, seed: int = 1,
    device: str = "cpu",
) -> Settling:
    """The model's centers settled on its training users' states, kept if better_settled says so of their health on
    the validation users (both calibrated as export will calibrate them); else the trained centers. The test users
    stay unseen."""
    states = training_states(model, data, device).cpu()
    trained = model.intent_centers.detach().float().cpu()
    settled = settle_centers(states, trained, epochs, temperature, seed)
    before, after = (split_health(model, valid, device, calibrate(states, c, balance=True)) for c in (trained, settled))
    better = better_settled(before, after)
    return Settling(settled if better else trained, "settled" if better else "trained", before, after)


def better_settled(before: IntentHealth, after: IntentHealth) -> bool:
    """Whether the settled centers (`after`) are at least as good as the trained ones (`before`) on at least two of
    the three measures of intent health: effective number (higher), overlap (lower), lift@100 (higher), a difference
    under TIE of the trained value counting as a tie.

    A vote rather than one measure: judged by lift alone, settling was refused on a data set where it made the
    intents far more distinct for a little lift, and there the trained centers then lost to k-means on the test
    users (docs/research/INTENTS-NOTES.md, *Settling the centers*). A missing overlap or lift counts as the worst.
    Before the vote, a floor on spread: settled centers that reach an effective number of K / 2 where the trained
    ones fell short are kept unless they lose more than SPREAD_LIFT_LOSS of the lift."""
    half = before.intents / 2
    if before.effective < half <= after.effective and (after.lift or 0.0) >= (before.lift or 0.0) * (1.0 - SPREAD_LIFT_LOSS):
        return True
    overlap_before = before.overlap if before.overlap is not None else 1.0
    votes = (
        after.effective >= before.effective * (1.0 - TIE),
        (after.overlap if after.overlap is not None else 1.0) <= overlap_before * (1.0 + TIE),
        (after.lift or 0.0) >= (before.lift or 0.0) * (1.0 - TIE),
    )
    return sum(votes) >= 2
