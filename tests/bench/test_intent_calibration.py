"""bench.intent_calibration's two readings, checked by hand on small cases."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.intent_calibration import balancing_bias, member_centroids
from training.intent_health import shares


def test_the_bias_spreads_rows_that_all_prefer_one_column() -> None:
    gen = torch.Generator().manual_seed(0)
    sim = torch.rand(400, 4, generator=gen) * 0.1
    sim[:, 0] += 0.2  # every row's nearest column is 0
    assert shares(sim.argmax(1), 4).max() == 1.0
    spread = shares((sim + balancing_bias(sim)).argmax(1), 4)
    assert spread.max() < 0.3 and spread.min() > 0.2


def test_members_mean_state_and_an_empty_center_keeps_itself() -> None:
    states = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=-1)
    centers = F.normalize(torch.tensor([[1.0, 0.2], [0.0, -1.0]]), dim=-1)
    got = member_centroids(states, torch.tensor([0, 0, 0]), centers)
    assert torch.allclose(got[0], F.normalize(states.sum(0), dim=-1)) and torch.allclose(got[1], centers[1])
