"""training/intent_ids.py: a retrain's intents follow the live ones, and what did not survive is reported."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from elcrec.training.intent_health import calibrate
from elcrec.training.intent_ids import carry, match, transitions
from elcrec.training.intent_settle import settle_centers

K, PER, D = 8, 300, 16


def groups(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(directions (K, D), states (K * PER, D), labels (K * PER,)): users in K tight planted groups."""
    gen = torch.Generator().manual_seed(seed)
    directions = F.normalize(torch.randn(K, D, generator=gen), dim=-1)
    labels = torch.arange(K).repeat_interleave(PER)
    states = F.normalize(directions[labels] + 0.15 * torch.randn(K * PER, D, generator=gen), dim=-1)
    return directions, states, labels


def retrained(states: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """The same users' states under a retrained encoder: the space turned (a random rotation), a little noise."""
    gen = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(D, D, generator=gen))
    return F.normalize(states @ rotation + 0.03 * torch.randn(states.shape, generator=gen), dim=-1)


def served(states: torch.Tensor, centers: torch.Tensor) -> np.ndarray:
    """Users' intents as the service reads a balanced version: calibrated on the states."""
    return calibrate(states, centers, balance=True).assign(states).numpy()


def test_ids_follow_the_live_intents_where_the_structure_is_the_same() -> None:
    directions, states, labels = groups()
    live_centers = directions[(torch.arange(K) - 3) % K]  # the live version numbered its groups in its own order
    live = served(states, live_centers)
    assert (live == ((labels + 3) % K).numpy()).mean() > 0.99
    moved = retrained(states)
    carried, fit = carry(live_centers, moved, states)
    assert fit > 0.99 and torch.allclose(carried.norm(dim=1), torch.ones(K))
    new = served(moved, carried)
    assert (new == live).mean() > 0.99
    report = transitions(live, new, K, K)
    assert report["kept"] == K and not (report["dissolved"] or report["born"] or report["merged"] or report["renumbered"])
    # The centers left where they were lose the users that turned away; settled again freely, they find the same
    # groups in another order, which matching against the live centers cannot undo.
    assert (served(moved, live_centers) == live).mean() < 0.5
    settled = settle_centers(moved, live_centers, epochs=60, temperature=0.1, batch_size=512, lr=0.02)
    order, _ = match(settled, live_centers)
    assert (served(moved, settled[torch.from_numpy(order)]) == live).mean() < 0.5


def test_a_dissolved_and_a_born_intent_are_reported() -> None:
    directions, states, labels = groups()
    gen = torch.Generator().manual_seed(5)
    live = served(states, directions)
    changed = states.clone()
    # Group 7 dissolves: its users join the other groups, about evenly ...
    gone = (labels == 7).nonzero().squeeze(1)
    changed[gone] = F.normalize(directions[torch.randint(0, 7, (len(gone),), generator=gen)]
                                + 0.15 * torch.randn(len(gone), D, generator=gen), dim=-1)
    # ... and another group forms where it was, from a seventh of each of the others' users.
    taken = torch.cat([(labels == g).nonzero().squeeze(1)[: PER // 7] for g in range(7)])
    changed[taken] = F.normalize(directions[7] + 0.15 * torch.randn(len(taken), D, generator=gen), dim=-1)
    moved = retrained(changed)
    carried, _ = carry(directions, moved, states)
    new = served(moved, carried)
    report = transitions(live, new, K, K)
    assert report["dissolved"] == [7] and report["born"] == [7]
    assert report["kept"] == 7 and not report["merged"] and not report["renumbered"]
    assert 0.10 < report["users_in_born"] < 0.15 and 0.10 < report["users_in_dissolved"] < 0.15
    stayed = np.ones(len(live), dtype=bool)
    stayed[gone.numpy()] = stayed[taken.numpy()] = False
    assert (new[stayed] == live[stayed]).mean() > 0.97


def test_transitions_name_merges_renumberings_and_intents_without_users() -> None:
    old = np.array([0] * 10 + [1] * 10 + [2] * 10 + [3] * 10 + [4] * 10)
    new = np.array([0] * 10 + [1] * 10 + [1] * 8 + [0] * 2 + [5] * 10 + [2, 3, 4, 0, 1, 5, 2, 3, 4, 0])
    report = transitions(old, new, 6, 6)
    # 0 kept; 1 and 2 merge into 1; 3 continues as 5; 4 scatters; new 2, 3 and 4 hold users nobody continues as
    assert report["kept"] == 1 and report["merged"] == [{"into": 1, "from": [1, 2]}]
    assert report["renumbered"] == [[3, 5]] and report["dissolved"] == [4] and report["born"] == [2, 3, 4]
    assert report["users_in_dissolved"] == 0.2 and report["users_in_born"] == 0.12
    # old intent 5 held nobody and new intent 5's users came from 3: neither is counted as dissolved or born
    same = transitions(old, old, 6, 6)
    assert same["kept"] == 5 and same["dissolved"] == same["born"] == same["merged"] == same["renumbered"] == []
