"""training/intent_ids.py: a retrain's intents follow the live ones, and what did not survive is reported."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from training.intent_health import calibrate
from training.intent_ids import match, transitions
from training.intent_settle import settle_centers

K, PER, D = 8, 300, 16


def groups(k: int = K, per: int = PER, d: int = D, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(directions (k, d), states (k * per, d), labels (k * per,)): users in k tight planted groups."""
    gen = torch.Generator().manual_seed(seed)
    directions = F.normalize(torch.randn(k, d, generator=gen), dim=-1)
    labels = torch.arange(k).repeat_interleave(per)
    states = F.normalize(directions[labels] + 0.15 * torch.randn(k * per, d, generator=gen), dim=-1)
    return directions, states, labels


def follow(
    states: torch.Tensor, start: torch.Tensor, live: torch.Tensor, live_centers: torch.Tensor, anchored: bool
) -> np.ndarray:
    """Each user's intent after settling from `start` (anchored on the users' `live` intents or not), matched to
    the live centers' ids and calibrated with a balancing bias, as a retrain of a balanced version does."""
    settled = settle_centers(states, start, epochs=60, temperature=0.1, batch_size=512, lr=0.02,
                             anchor=live if anchored else None)
    order, _ = match(settled, live_centers)
    space = calibrate(states, settled[torch.from_numpy(order)], balance=True)
    return space.assign(states).numpy()


def test_ids_follow_the_live_intents_where_the_structure_is_the_same() -> None:
    directions, states, labels = groups()
    live = (labels + 3) % K  # the live version numbered its groups in its own order
    live_centers = directions[(torch.arange(K) - 3) % K]  # its center i sits on the group it calls i
    moved = F.normalize(states + 0.05 * torch.randn(states.shape, generator=torch.Generator().manual_seed(2)), dim=-1)
    start = F.normalize(live_centers + 0.3 * torch.randn(K, D, generator=torch.Generator().manual_seed(3)), dim=-1)
    new = follow(moved, start, live, live_centers, anchored=True)
    assert (new == live.numpy()).mean() > 0.97
    report = transitions(live.numpy(), new, K, K)
    assert report["kept"] == K and not report["dissolved"] and not report["born"] and not report["merged"]


def test_a_uniform_cloud_keeps_its_live_partition_only_when_anchored() -> None:
    # No structure to find: every balanced partition is about as good, and settling freely drifts to another one.
    gen = torch.Generator().manual_seed(4)
    states = F.normalize(torch.randn(4000, 4, generator=gen), dim=-1)
    start = F.normalize(torch.randn(K, 4, generator=gen), dim=-1)
    live_space = calibrate(states, settle_centers(states, start, 40, 0.1, batch_size=512, lr=0.02), balance=True)
    live = live_space.assign(states)
    moved = F.normalize(states + 0.03 * torch.randn(states.shape, generator=gen), dim=-1)
    drifted = F.normalize(live_space.centers + 0.4 * torch.randn(K, 4, generator=gen), dim=-1)
    anchored = (follow(moved, drifted, live, live_space.centers, anchored=True) == live.numpy()).mean()
    free = (follow(moved, drifted, live, live_space.centers, anchored=False) == live.numpy()).mean()
    assert anchored > 0.9 and free < 0.75


def test_a_dissolved_and_a_born_intent_are_reported() -> None:
    directions, states, labels = groups()
    gen = torch.Generator().manual_seed(5)
    live = labels.clone()
    moved = states.clone()
    # Group 7 dissolves: its users join the other groups, about evenly.
    gone = (labels == 7).nonzero().squeeze(1)
    moved[gone] = F.normalize(directions[torch.randint(0, 7, (len(gone),), generator=gen)]
                              + 0.15 * torch.randn(len(gone), D, generator=gen), dim=-1)
    # A new group is born elsewhere, from about as many users of groups 0..6 (a seventh of each).
    taken = torch.cat([(labels == g).nonzero().squeeze(1)[: PER // 7] for g in range(7)])
    elsewhere = F.normalize(torch.randn(D, generator=gen), dim=-1)
    moved[taken] = F.normalize(elsewhere + 0.15 * torch.randn(len(taken), D, generator=gen), dim=-1)
    new = follow(moved, directions, live, directions, anchored=True)
    report = transitions(live.numpy(), new, K, K)
    assert report["dissolved"] == [7] and report["born"] == [7]
    assert report["kept"] == 7 and not report["merged"] and not report["renumbered"]
    assert 0.10 < report["users_in_born"] < 0.15 and 0.10 < report["users_in_dissolved"] < 0.15
    stayed = np.ones(len(live), dtype=bool)
    stayed[gone.numpy()] = stayed[taken.numpy()] = False
    assert (new[stayed] == live.numpy()[stayed]).mean() > 0.97


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
