"""Intent health by hand: shares, the effective number, overlap and lift on cases whose answers are known."""

import math

import pytest
import torch

from training.intent_health import effective_number, health, lift, overlap, shares


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
    h = health(pooled, directions * 3.0, items, nxt, overlap_top=per, lift_top=per)
    assert h.used == 4 and h.largest == pytest.approx(0.25)
    assert h.effective == pytest.approx(4.0)
    assert h.overlap == pytest.approx(0.0)
    assert h.lift == pytest.approx(4.0)
    # all users in one center, far from the rest: one intent, no lift
    collapsed = torch.cat([torch.ones(1, d), -torch.ones(3, d)])
    h1 = health(pooled + 5 * torch.ones(d), collapsed, items, nxt, overlap_top=per, lift_top=per)
    assert h1.used == 1 and h1.effective == pytest.approx(1.0) and h1.overlap is None


def test_matching_gives_each_new_center_the_id_of_the_old_one_it_matches():
    from training.intent_ids import match

    old = torch.nn.functional.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    new = old[perm] + 0.01 * torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    order, similarity = match(new, old)
    assert (perm[torch.from_numpy(order)] == torch.arange(6)).all()  # new row order[i] came from old row i
    assert similarity.min() > 0.99
