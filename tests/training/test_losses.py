import math

import pytest
import torch
import torch.nn.functional as F

from elcrec.model.intents import assign_intents, squared_distances
from elcrec.training import losses


def test_squared_distances_by_hand():
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert torch.allclose(squared_distances(x, c), torch.tensor([[1.0, 9.0], [4.0, 2.0]]))


def test_assign_intents_picks_nearest_normalised_center_with_runner_up():
    centers = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    pooled = torch.tensor([[10.0, 1.0], [0.1, 5.0], [-3.0, -0.5]])  # scale must not matter
    dist, ids = assign_intents(pooled, centers * 7, top=2)
    assert ids[:, 0].tolist() == [0, 1, 2]
    assert ids[0, 1].item() == 1  # (10, 1) is closer to (0, 1) than to (-1, 0)
    z = F.normalize(pooled, dim=-1)
    assert dist[0, 0].item() == pytest.approx(((z[0] - torch.tensor([1.0, 0.0])) ** 2).sum().item(), abs=1e-6)
    assert torch.all(dist[:, 0] <= dist[:, 1])


def test_next_item_bce_by_hand():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    hidden = torch.tensor([[[5.0, 5.0], [2.0, 0.0]]])  # (1, 2, 2); first position has no target
    pos = torch.tensor([[0, 1]])
    neg = torch.tensor([[3, 2]])
    # position 2: pos logit h.e1 = 2, neg logit h.e2 = 0
    expected = -math.log(1 / (1 + math.exp(-2))) - math.log(1 - 0.5)
    assert losses.next_item_bce(hidden, pos, neg, table).item() == pytest.approx(expected, rel=1e-6)


def test_next_item_softmax_is_cross_entropy_over_real_items():
    table = torch.tensor([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])  # rows 0 and 3 must not count
    hidden = torch.tensor([[[2.0, 0.0]]])
    got = losses.next_item_softmax(hidden, torch.tensor([[1]]), table).item()
    assert got == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)), rel=1e-6)


def test_next_item_softmax_label_smoothing_by_hand():
    table = torch.tensor([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])
    hidden = torch.tensor([[[2.0, 0.0]]])  # logits 2 (the target) and 0 over the two real items
    log_p = [2 - math.log(math.exp(2) + 1), -math.log(math.exp(2) + 1)]
    # smoothing 0.2 over N = 2 items: target weight 0.8 + 0.1, the other item 0.1
    expected = -(0.9 * log_p[0] + 0.1 * log_p[1])
    got = losses.next_item_softmax(hidden, torch.tensor([[1]]), table, label_smoothing=0.2).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_elcm_pull_push_and_intents_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    # D = [[0, 2], [2, 4]] -> pull = 2; pairwise ||cj - ck||^2 = [[0, 2], [2, 0]] -> push = -1
    loss, intents = losses.elcm(z, c, trade_off=10.0)
    assert loss.item() == pytest.approx(10.0 * (2.0 - 1.0))
    assert intents.tolist() == [0, 0]


def test_nt_xent_matches_the_2b_row_definition():
    torch.manual_seed(0)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    total = 0.0
    for i in range(3):
        row_a = [a[i] @ b[j] for j in range(3)] + [a[i] @ a[j] for j in range(3) if j != i]
        total += -(row_a[i] - torch.logsumexp(torch.stack(row_a), 0))
        row_b = [b[i] @ b[j] for j in range(3) if j != i] + [b[i] @ a[j] for j in range(3)]
        positive = b[i] @ a[i]
        total += -(positive - torch.logsumexp(torch.stack(row_b), 0))
    assert losses.nt_xent(a, b).item() == pytest.approx((total / 6).item(), rel=1e-5)


def test_nt_xent_temperature_scales_logits():
    torch.manual_seed(1)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert losses.nt_xent(a, b, 2.0).item() == pytest.approx(losses.nt_xent(a / 2**0.5, b / 2**0.5).item(), rel=1e-5)


def test_prototypes_shift_adds_and_concat_appends_the_nearest_center():
    centers = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    h = torch.tensor([[[0.9, 0.1], [0.2, 3.0]]])
    shifted = losses.with_prototypes(h, centers, "shift")
    assert torch.allclose(shifted, torch.tensor([[[1.9, 0.1], [0.2, 4.0]]]))
    concat = losses.with_prototypes(h, centers, "concat")
    assert concat.shape == (1, 2, 4)
    assert torch.allclose(concat[0, :, 2:], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="prototype"):
        losses.with_prototypes(h, centers, "bogus")


def test_intent_contrastive_averages_both_views_against_their_centers():
    torch.manual_seed(2)
    p1, p2, centers = torch.randn(3, 2), torch.randn(3, 2), torch.randn(4, 2)
    intents = torch.tensor([3, 0, 3])
    expected = (losses.nt_xent(p1, centers[intents]) + losses.nt_xent(p2, centers[intents])) / 2
    assert losses.intent_contrastive(p1, p2, centers, intents).item() == pytest.approx(expected.item())


def test_losses_are_differentiable_to_centers():
    torch.manual_seed(3)
    centers = torch.nn.Parameter(F.normalize(torch.randn(4, 3), dim=-1))
    h1, h2 = torch.randn(5, 6, 3), torch.randn(5, 6, 3)
    z = F.normalize(torch.randn(5, 3), dim=-1)
    loss, intents = losses.elcm(z, centers, 1.0)
    loss = loss + losses.instance_contrastive(h1, h2, centers, "concat")
    loss = loss + losses.intent_contrastive(h1.mean(1), h2.mean(1), centers, intents)
    loss.backward()
    assert centers.grad is not None and torch.isfinite(centers.grad).all() and centers.grad.abs().sum() > 0


def test_sampled_softmax_ignores_a_negative_equal_to_the_target():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    hidden = torch.tensor([[[2.0, 1.0]]])
    got = losses.next_item_sampled_softmax(hidden, torch.tensor([[1]]), table, torch.tensor([1, 2, 3])).item()
    # logits: target 2, negatives item 2 -> 1, item 3 -> 3 (item 1 is the target itself: excluded)
    assert got == pytest.approx(-(2 - math.log(math.exp(2) + math.exp(1) + math.exp(3))), rel=1e-6)


def test_sinkhorn_spreads_rows_evenly_over_the_centers():
    from elcrec.training.losses import sinkhorn

    # every row prefers center 0: the balanced assignment still gives each center B / K rows in all
    scores = torch.tensor([[0.9, 0.1, 0.0, 0.0]] * 8) + 0.01 * torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    q = sinkhorn(scores, eps=0.05, iters=20)
    assert torch.allclose(q.sum(1), torch.ones(8), atol=1e-4)
    assert torch.allclose(q.sum(0), torch.full((4,), 2.0), atol=1e-3)


def test_balanced_clustering_pulls_a_sequence_towards_its_own_center():
    from elcrec.training.losses import balanced_clustering

    centers = torch.nn.functional.normalize(torch.eye(4)[:2] + 0.0, dim=-1)  # two centers, e1 and e2
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2, 0.0, 0.0], [0.2, 1.0, 0.0, 0.0]]), dim=-1)
    z.requires_grad_(True)
    loss, ids = balanced_clustering(z, centers, weight=1.0)
    assert ids.tolist() == [0, 1]
    loss.backward()
    # descending the gradient moves each row towards its own center
    moved = z.detach() - 0.1 * z.grad
    assert moved[0, 0] > z[0, 0] and moved[1, 1] > z[1, 1]


def test_a_queue_lets_a_batch_follow_its_nearest_center():
    from elcrec.training.losses import balanced_clustering

    e = torch.eye(2)
    centers = e  # two centers, e1 and e2
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, 0.2]]), dim=-1)  # both nearest e1
    # alone, the batch of two must give each center one row: the row less close to e1 goes to e2
    _, alone = balanced_clustering(z, centers, weight=1.0)
    assert sorted(alone.tolist()) == [0, 1]
    # with earlier rows that sit on e2, the equipartition is met over all of them: both rows go to e1
    queue = e[[1, 1]]
    _, with_queue = balanced_clustering(z, centers, weight=1.0, queue=queue)
    assert with_queue.tolist() == [0, 0]


def test_elcm_depends_only_on_the_means_which_is_why_intents_collapse():
    # For unit vectors, ELCM (the paper's pull to every center plus push between centers) equals
    # 2 |mean center|^2 - 2 mean z . mean center: it sees only the batch mean of the sequences, and is lowest when
    # all sequences point one way. Nothing in it ties a sequence to its own center (docs/research/INTENTS-NOTES.md).
    from elcrec.training.losses import elcm

    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(32, 16, generator=g), dim=-1)
    c = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1)
    loss, _ = elcm(z, c, trade_off=1.0)
    zm, cm = z.mean(0), c.mean(0)
    assert loss.item() == pytest.approx((2 * cm @ cm - 2 * zm @ cm).item(), abs=1e-5)
