"""bench.intent_centers' pieces: the choice on validation users and the consensus of several k-means."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.intent_centers import choose, consensus_centers


def _row(effective: float, lift: float, overlap: float) -> dict:
    return {"valid": {"effective": effective, "lift": lift, "overlap": overlap}, "test": {}}


def test_the_choice_keeps_the_best_lift_among_candidates_spread_over_half_the_intents() -> None:
    rows = {"collapsed": _row(3.0, 9.0, 0.01), "even": _row(16.0, 2.1, 0.03), "sharper": _row(9.0, 2.4, 0.05),
            "as sharp, more distinct": _row(12.0, 2.4, 0.02)}
    assert choose(rows, 16) == "as sharp, more distinct"  # the collapsed one is not a candidate at K = 16
    assert choose(rows, 4) == "collapsed"


def test_the_consensus_of_k_means_finds_the_planted_groups() -> None:
    gen = torch.Generator().manual_seed(0)
    planted = F.normalize(torch.randn(4, 16, generator=gen), dim=-1)
    states = F.normalize(planted.repeat_interleave(50, 0) + 0.05 * torch.randn(200, 16, generator=gen), dim=-1)
    draws = [F.normalize(states[torch.randperm(200, generator=gen)[:4]], dim=-1) for _ in range(5)]
    got = consensus_centers(states, draws, seed=1)
    assert got.shape == (4, 16) and torch.allclose(got.norm(dim=1), torch.ones(4), atol=1e-5)
    assert (got @ planted.T).max(0).values.min() > 0.99  # every planted group has a center on it
