"""Intent health by hand: shares, the effective number, overlap and lift on cases whose answers are known."""

import math

import pytest
import torch
import torch.nn.functional as F

from elcrec.model.intents import IntentSpace
from elcrec.training.intent_health import (
    balancing_bias,
    calibrate,
    effective_number,
    health,
    lift,
    overlap,
    profiles,
    shares,
    trained_balanced,
)


def test_all_users_in_one_intent_gives_one():
    s = shares(torch.zeros(50, dtype=torch.long), 8)
    assert effective_number(s) == pytest.approx(1.0)
    assert s.max() == 1.0 and int((s > 0).sum()) == 1


def test_equal_shares_give_the_number_of_intents():
    assert effective_number(shares(torch.arange(40) % 8, 8)) == pytest.approx(8.0)
    # two intents at 3/4 and 1/4: exp(H) by hand
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert effective_number(torch.tensor([0.75, 0.25, 0.0], dtype=torch.float64)) == pytest.approx(math.exp(h))


def test_identical_lists_overlap_one_and_disjoint_zero():
    s = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert overlap(torch.tensor([[0, 1, 2], [0, 1, 2]]), s, 10) == pytest.approx(1.0)
    assert overlap(torch.tensor([[0, 1, 2], [3, 4, 5]]), s, 10) == pytest.approx(0.0)
    # half the items shared: Jaccard 2 / 6
    assert overlap(torch.tensor([[0, 1, 2, 3], [2, 3, 4, 5]]), s, 10) == pytest.approx(2 / 6)
    # one intent in use: no pair to compare
    assert overlap(torch.tensor([[0, 1], [0, 1]]), torch.tensor([1.0, 0.0], dtype=torch.float64), 10) is None


def test_lift_by_hand():
    lists = torch.tensor([[0, 1], [2, 3]])
    s = torch.tensor([0.5, 0.5], dtype=torch.float64)
    # every user's next item is in the own intent's list and not the other's: 1 / 0.5
    assert lift(lists, torch.tensor([0, 1]), torch.tensor([1, 2]), s, 6) == pytest.approx(2.0)
    # next items in the other intent's list: own 0, by share 0.5
    assert lift(lists, torch.tensor([0, 1]), torch.tensor([2, 0]), s, 6) == pytest.approx(0.0)
    # next items in no list at all: undefined
    assert lift(lists, torch.tensor([0, 1]), torch.tensor([5, 5]), s, 6) is None


def test_planted_intents_are_found_and_predict_the_next_item():
    # 4 planted intents along orthogonal directions; each owns 10 items along its direction, and its users'
    # next items are among them. The true centers find 4 equal intents, distinct, with lift 4 (1 / 0.25).
    g = torch.Generator().manual_seed(0)
    d, per = 8, 10
    directions = torch.eye(d)[:4]
    items = torch.cat([directions[j].repeat(per, 1) + 0.05 * torch.randn(per, d, generator=g) for j in range(4)])
    truth = torch.arange(400) % 4
    pooled = directions[truth] + 0.1 * torch.randn(400, d, generator=g)
    nxt = truth * per + torch.randint(0, per, (400,), generator=g)
    h = health(pooled, IntentSpace(directions * 3.0), items, nxt, overlap_top=per, lift_top=per)
    assert h.used == 4 and h.largest == pytest.approx(0.25)
    assert h.effective == pytest.approx(4.0)
    assert h.overlap == pytest.approx(0.0)
    assert h.lift == pytest.approx(4.0)
    # all users in one center, far from the rest: one intent, no lift
    collapsed = torch.cat([torch.ones(1, d), -torch.ones(3, d)])
    h1 = health(pooled + 5 * torch.ones(d), IntentSpace(collapsed), items, nxt, overlap_top=per, lift_top=per)
    assert h1.used == 1 and h1.effective == pytest.approx(1.0) and h1.overlap is None


def test_the_bias_spreads_rows_that_all_prefer_one_column():
    gen = torch.Generator().manual_seed(0)
    sim = torch.rand(400, 4, generator=gen) * 0.1
    sim[:, 0] += 0.2  # every row's nearest column is 0
    assert shares(sim.argmax(1), 4).max() == 1.0
    spread = shares((sim + balancing_bias(sim)).argmax(1), 4)
    assert spread.max() < 0.3 and spread.min() > 0.2


def test_the_bias_never_raises_a_column_nobody_is_near():
    gen = torch.Generator().manual_seed(0)
    sim = torch.rand(300, 4, generator=gen) * 0.1
    sim[:, 0] += 0.2  # every row's nearest column is 0
    sim[:, 3] = -1.0  # a center nobody is near
    bias = balancing_bias(sim)
    assert bias.max() <= 0 and bias[3] == 0  # the crowded column is lowered, the far one not raised
    spread = shares((sim + bias).argmax(1), 4)
    assert spread[3] == 0 and spread[:3].max() < 0.4 and spread[:3].min() > 0.28


def test_a_profile_is_the_members_mean_state_and_an_empty_center_keeps_itself():
    states = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=-1)
    centers = torch.tensor([[2.0, 0.4], [0.0, -1.0]])
    got = profiles(states, torch.tensor([0, 0, 0]), centers)
    assert torch.allclose(got[0], F.normalize(states.sum(0), dim=-1))
    assert torch.allclose(got[1], F.normalize(centers[1], dim=0))


def planted(seed: int = 0):
    """4 planted intents along orthogonal directions, 10 items and 100 users each (as above)."""
    g = torch.Generator().manual_seed(seed)
    d, per = 8, 10
    directions = torch.eye(d)[:4]
    items = torch.cat([directions[j].repeat(per, 1) + 0.05 * torch.randn(per, d, generator=g) for j in range(4)])
    truth = torch.arange(400) % 4
    pooled = F.normalize(directions[truth] + 0.1 * torch.randn(400, d, generator=g), dim=-1)
    nxt = truth * per + torch.randint(0, per, (400,), generator=g)
    return directions, items, pooled, nxt, per


def test_calibration_repairs_centers_that_hold_their_users_but_point_elsewhere():
    # Centers learned off their users: each is its direction tilted towards a shared one (the popular items'),
    # and center 0 more, so that it also draws the users of center 1. Read as they are, they list the shared
    # direction's neighbours for all and crowd intent 0; the calibration's bias spreads the users again and the
    # profiles (the members' mean states) describe each intent by its own users.
    directions, items, pooled, nxt, per = planted()
    shared = torch.zeros(8)
    shared[6] = 1.0
    items = torch.cat([items, shared.repeat(per, 1)])  # the shared direction's own 10 items, no one's next item
    centers = directions + 2.0 * shared
    centers[0] += 1.5 * directions[1]
    raw = health(pooled, IntentSpace(centers), items, nxt, overlap_top=per, lift_top=per)
    assert raw.largest == pytest.approx(0.5)  # intent 0 takes the users of intent 1 too
    assert raw.overlap == pytest.approx(1.0) and raw.lift is None  # all list the shared items, no one's next
    space = calibrate(pooled, centers, balance=True)
    fixed = health(pooled, space, items, nxt, overlap_top=per, lift_top=per)
    assert fixed.largest < 0.3 and fixed.effective > 3.8
    assert fixed.overlap == pytest.approx(0.0) and fixed.lift is not None and fixed.lift > 3.5
    # without the bias the users stay where the centers put them; the profiles still describe them
    plain = calibrate(pooled, centers, balance=False)
    assert plain.bias is None and health(pooled, plain, items, nxt, per, per).largest == pytest.approx(raw.largest)


def test_a_fraction_of_the_bias_is_that_fraction_and_spreads_part_of_the_way():
    directions, items, pooled, nxt, per = planted()
    centers = directions + 2.0 * torch.eye(8)[6]  # tilted towards a shared direction, as above
    centers[0] += 1.5 * directions[1]  # intent 0 draws the users of intent 1 too: half of them in one intent
    full, half = calibrate(pooled, centers, True), calibrate(pooled, centers, True, strength=0.5)
    assert full.bias is not None and half.bias is not None and torch.allclose(half.bias, full.bias * 0.5)
    crowded = [health(pooled, space, items, nxt, per, per).largest for space in (calibrate(pooled, centers, False), half, full)]
    assert crowded[0] == pytest.approx(0.5) and crowded[0] >= crowded[1] >= crowded[2] and crowded[2] < 0.3


def test_only_centers_trained_balanced_get_a_bias():
    assert trained_balanced({"kind": "trained", "train_config": {"intent_loss": "balanced"}})
    assert trained_balanced({"kind": "retrained", "train_config": {"intent_loss": "balanced"}})
    assert not trained_balanced({"kind": "trained", "train_config": {"intent_loss": "elcm"}})
    assert not trained_balanced({"kind": "imported"})
    # k-means centers fitted on a balanced model are not the trained ones
    assert not trained_balanced({"kind": "intents-fit", "train_config": {"intent_loss": "balanced"}})
    # calibrated again: the parent's centers decide
    balanced = {"kind": "trained", "train_config": {"intent_loss": "balanced"}}
    assert trained_balanced({"kind": "calibrated", "parent_origin": balanced})
    assert not trained_balanced({"kind": "calibrated", "parent_origin": {"kind": "imported"}})
    assert not trained_balanced({"kind": "calibrated", "parent_origin": None})


def test_matching_gives_each_new_center_the_id_of_the_old_one_it_matches():
    from elcrec.training.intent_ids import match

    old = torch.nn.functional.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    new = old[perm] + 0.01 * torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    order, similarity = match(new, old)
    assert (perm[torch.from_numpy(order)] == torch.arange(6)).all()  # new row order[i] came from old row i
    assert similarity.min() > 0.99
