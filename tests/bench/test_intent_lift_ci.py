"""bench.intent_lift_ci: per-user hits that give intent health's lift, and the paired bootstrap of a lift gap."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench.intent_calibration import IntentInputs
from bench.intent_lift_ci import hits, paired_bootstrap
from elcrec.model.intents import IntentSpace
from elcrec.training import intent_health as ih


def _inputs(users: int = 400, d: int = 8, n: int = 300, k: int = 4) -> tuple[IntentInputs, IntentSpace]:
    gen = torch.Generator().manual_seed(3)
    centers = F.normalize(torch.randn(k, d, generator=gen), dim=-1)
    group = torch.arange(users) % k
    states = F.normalize(centers[group] + 0.3 * torch.randn(users, d, generator=gen), dim=-1)
    items = torch.randn(n, d, generator=gen)
    nxt = torch.randint(0, n, (users,), generator=gen)
    got = IntentInputs(data=None, states=states, nxt=nxt, train=states, centers=centers, items=items)  # type: ignore[arg-type]
    return got, IntentSpace(centers)


def test_the_hits_give_the_lift_intent_health_reports() -> None:
    got, space = _inputs()
    own, chance = hits(space, got)
    expected = ih.health(got.states, space, got.items, got.nxt).lift
    assert expected is not None and abs(own.mean() / chance.mean() - expected) < 1e-9


def test_a_gap_of_nothing_has_an_interval_around_zero_and_a_planted_gap_an_interval_past_it() -> None:
    rng = np.random.default_rng(0)
    chance = np.full(2000, 0.1)
    a = (rng.random(2000) < 0.2).astype(float), chance
    same = paired_bootstrap(a, a, draws=300, seed=1)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0]  # the same users each draw: no gap, no spread
    b = (rng.random(2000) < 0.2).astype(float), chance
    alike = paired_bootstrap(a, b, draws=300, seed=1)
    assert alike["ci95"][0] < 0 < alike["ci95"][1]  # two draws of one hit rate: the interval holds zero
    worse = (rng.random(2000) < 0.1).astype(float), chance
    gap = paired_bootstrap(a, worse, draws=300, seed=1)
    assert gap["ci95"][0] > 0.5  # lift 2 against lift 1, on 2,000 users
