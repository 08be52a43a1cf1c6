"""training/intent_settle.py: the balanced loss on the centers alone, the states fixed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from elcrec.training.config import TrainConfig
from elcrec.training.intent_health import IntentHealth, shares
from elcrec.training.intent_settle import better_settled, settle_centers
from elcrec.training.run import resolve_settings


def planted_states(k: int = 8, per: int = 300, d: int = 16, noise: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    directions = F.normalize(torch.randn(k, d, generator=gen), dim=-1)
    labels = torch.arange(k).repeat_interleave(per)
    return F.normalize(directions[labels] + noise * torch.randn(k * per, d, generator=gen), dim=-1), labels


def test_collapsed_centers_settle_onto_the_planted_groups() -> None:
    states, labels = planted_states()
    # every center starts next to the first group: the nearest center takes almost everyone from two or three
    centers = F.normalize(states[:1] + 0.05 * torch.randn(8, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    before = (states @ centers.T).argmax(1)
    settled = settle_centers(states, centers, epochs=100, temperature=0.1, batch_size=512, lr=0.05)
    after = (states @ settled.T).argmax(1)
    assert shares(after, 8).max() < 0.2 < shares(before, 8).max()
    # each planted group lies almost whole in one center, a different one for each group
    majority = [int(torch.mode(after[labels == g]).values) for g in range(8)]
    purity = sum(float((after[labels == g] == majority[g]).float().mean()) for g in range(8)) / 8
    assert len(set(majority)) == 8 and purity > 0.9
    assert torch.allclose(settled.norm(dim=1), torch.ones(8))


def test_no_epochs_keeps_the_centers_and_bad_input_is_named() -> None:
    states, _ = planted_states(k=2, per=10)
    centers = torch.randn(3, 16) * 4
    assert torch.allclose(settle_centers(states, centers, 0, 0.1), F.normalize(centers, dim=-1))
    with pytest.raises(ValueError, match="must be >= 0"):
        settle_centers(states, centers, -1, 0.1)
    with pytest.raises(ValueError, match="no training states"):
        settle_centers(states[:0], centers, 1, 0.1)


def test_balanced_runs_settle_unless_told_otherwise_and_elcm_refuses_it() -> None:
    base: tuple[dict, dict] = ({"n_layers": 1, "n_intents": 4, "d": 16}, {})
    model_flags = {"pooling": "real"}
    balanced = resolve_settings(50, base, model_flags, {"intent_loss": "balanced"}).train
    assert balanced.intent_settle == 100
    assert resolve_settings(50, base, model_flags, {"intent_loss": "balanced", "intent_settle": 0}).train.intent_settle == 0
    assert resolve_settings(50, base, model_flags, {}).train.intent_settle == 0
    assert "intent_settle" not in TrainConfig().to_dict()  # runs recorded before it keep their settings
    with pytest.raises(ValueError, match="intent_settle is a setting of intent_loss 'balanced'"):
        TrainConfig(intent_settle=5)
    with pytest.raises(ValueError, match="intent_settle must be >= 0"):
        TrainConfig(intent_loss="balanced", intent_settle=-1)


def test_settled_centers_win_on_two_of_the_three_measures() -> None:
    def health(effective: float, overlap: float | None, lift: float | None) -> IntentHealth:
        return IntentHealth(users=100, intents=8, used=8, largest=0.2, effective=effective, overlap=overlap, lift=lift)

    # Yelp at the end of its run (validation): a little more even, a fifth less overlap, 3% less lift: settled
    assert better_settled(health(254.4, 0.0039, 19.18), health(254.8, 0.0030, 18.62))
    # Yelp at epoch 4: worse on all three: trained
    assert not better_settled(health(239.7, 0.0192, 10.26), health(231.7, 0.0323, 9.98))
    # more predictive only, less even and less distinct: trained
    assert not better_settled(health(250.0, 0.0040, 12.0), health(245.0, 0.0042, 12.5))
    # differences under 1% are ties: MovieLens 100K at 150 epochs, seed 1 (as even within rounding, more predictive)
    assert better_settled(health(15.988, 0.0340, 2.157), health(15.981, 0.0347, 2.327))
    # far more even, a little more overlap, the same lift (the synthetic log's 8 genres over 32 intents, seed 1)
    assert better_settled(health(12.82, 0.0325, 3.896), health(18.85, 0.0674, 3.892))
    assert better_settled(health(5.0, 0.1, 2.0), health(5.0, 0.1, 2.0))  # a tie keeps the settled ones
    assert not better_settled(health(5.0, 0.1, 2.0), health(6.0, None, None))  # missing figures count as the worst


def test_settled_centers_that_reach_half_of_k_where_the_trained_did_not_are_kept_for_a_little_lift() -> None:
    def health(effective: float, overlap: float, lift: float) -> IntentHealth:
        return IntentHealth(users=1500, intents=32, used=32, largest=0.1, effective=effective, overlap=overlap, lift=lift)

    # the synthetic log, seed 3: the vote alone refuses them (more overlap, 3% less lift)
    trained, settled = health(11.9, 0.025, 4.05), health(24.8, 0.069, 3.92)
    assert better_settled(trained, settled)
    assert not better_settled(trained, health(24.8, 0.069, 3.70))  # 9% of the lift is too much for the spread
    assert not better_settled(trained, health(15.9, 0.069, 3.92))  # still short of K / 2: the vote decides
    assert not better_settled(health(16.0, 0.025, 4.05), settled)  # the trained ones reached K / 2 already


def test_the_settling_temperature_is_the_trainings_unless_told_and_names_no_run() -> None:
    balanced = TrainConfig(intent_loss="balanced", intent_settle=100, intent_temperature=0.3)
    assert balanced.settle_temperature == 0.3
    softer = TrainConfig(intent_loss="balanced", intent_settle=100, intent_settle_temperature=0.2)
    assert softer.settle_temperature == 0.2 and softer.intent_temperature == 0.1  # training's own is untouched
    assert "intent_settle_temperature" not in balanced.to_dict()  # runs recorded before it keep their settings
    assert softer.trajectory() == TrainConfig(intent_loss="balanced").trajectory()  # a finished run can settle again
    with pytest.raises(ValueError, match="intent_settle_temperature must be > 0"):
        TrainConfig(intent_loss="balanced", intent_settle_temperature=0.0)
    with pytest.raises(ValueError, match="intent_settle_temperature is a setting of intent_loss 'balanced'"):
        TrainConfig(intent_settle_temperature=0.2)



def test_settling_stops_at_its_step_budget_however_many_epochs_are_asked() -> None:
    states = torch.randn(64, 8)
    centers = torch.randn(4, 8)
    capped = settle_centers(states, centers, epochs=50, temperature=0.2, batch_size=16, max_steps=6)
    two_epochs = settle_centers(states, centers, epochs=2, temperature=0.2, batch_size=16)  # 4 steps an epoch
    assert not torch.allclose(capped, two_epochs)
    assert torch.allclose(capped, settle_centers(states, centers, epochs=3, temperature=0.2, batch_size=16,
                                                 max_steps=6))  # the same 6 steps: 1.5 epochs
