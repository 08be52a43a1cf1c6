import math

import numpy as np
import pytest
import torch

from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.training.data import EvalSplit
from elcrec.training.evaluate import evaluate_split
from elcrec.training.metrics import hit_ndcg, mask_scores, standard_errors, target_ranks


def test_hit_and_ndcg_from_ranks_by_hand():
    m = hit_ndcg(torch.tensor([0, 4, 5, 30]))
    assert m["HIT@5"] == pytest.approx(0.5)
    assert m["NDCG@5"] == pytest.approx((1.0 + 1 / math.log2(6)) / 4)
    assert m["HIT@10"] == pytest.approx(0.75)
    assert m["HIT@20"] == pytest.approx(0.75)


def test_standard_errors_are_the_per_user_spread_over_the_square_root_of_users():
    se = standard_errors(torch.tensor([0, 4, 5, 30]))
    assert se["HIT@5"] == pytest.approx(torch.tensor([1.0, 1.0, 0.0, 0.0]).std().item() / 2)
    ndcg = torch.tensor([1.0, 1 / math.log2(6), 0.0, 0.0], dtype=torch.float64)
    assert se["NDCG@5"] == pytest.approx(ndcg.std().item() / 2)
    assert standard_errors(torch.tensor([0, 0, 0]))["NDCG@20"] == 0.0  # every user alike: no spread
    assert math.isnan(standard_errors(torch.tensor([3]))["HIT@5"])  # one user: undefined


def test_reference_masks_seen_items_to_zero_so_they_can_outrank_negative_scores():
    # item 2 was seen; every other score is negative, so at 0 it ranks first under the reference protocol
    scores = torch.tensor([[-0.5, -1.0, 3.0, -2.0, -3.0]])
    rows, cols = torch.tensor([0]), torch.tensor([2])
    ref = mask_scores(scores.clone(), rows, cols, "reference")
    strict = mask_scores(scores.clone(), rows, cols, "strict")
    target = torch.tensor([1])
    # reference: 0 (seen item 2) and -0.5 (padding row 0) beat the target's -1.0
    assert target_ranks(ref, target).item() == 2
    # strict: seen item, padding row 0 and mask row (last) go to -inf; only nothing beats -1.0
    assert target_ranks(strict, target).item() == 0
    assert strict[0, 0] == float("-inf") and strict[0, -1] == float("-inf") and strict[0, 2] == float("-inf")


def test_protocols_agree_when_no_masked_item_or_special_row_reaches_the_top():
    scores = torch.tensor([[-9.0, 5.0, 4.0, 3.0, -9.0]])
    for protocol in ("reference", "strict"):
        masked = mask_scores(scores.clone(), torch.tensor([0]), torch.tensor([3]), protocol)
        assert target_ranks(masked, torch.tensor([2])).item() == 1


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="protocol"):
        mask_scores(torch.zeros(1, 3), torch.tensor([0]), torch.tensor([1]), "lenient")


def test_vectorised_evaluation_matches_a_per_user_loop():
    torch.manual_seed(0)
    model = ELCRec(ModelConfig(n_items=30, n_layers=1, n_intents=3, max_len=8)).eval()
    rng = np.random.default_rng(0)
    histories = [rng.choice(np.arange(1, 31), size=rng.integers(1, 12), replace=False) for _ in range(40)]
    inputs = np.zeros((40, 8), dtype=np.int64)
    for i, h in enumerate(histories):
        inputs[i, 8 - min(8, len(h)) :] = h[-8:]
    targets = rng.integers(1, 31, size=40)
    split = EvalSplit(inputs, targets, histories, np.arange(40))
    got = evaluate_split(model, split, ("reference", "strict"))
    for protocol in ("reference", "strict"):
        ranks = []
        with torch.no_grad():
            for i in range(40):
                scores = model(torch.from_numpy(inputs[i : i + 1]))[0, -1] @ model.item_table().T
                if protocol == "reference":
                    scores[histories[i]] = 0.0
                else:
                    scores[histories[i]] = float("-inf")
                    scores[0] = scores[-1] = float("-inf")
                ranks.append(int((scores > scores[targets[i]]).sum()))
        expected = hit_ndcg(torch.tensor(ranks))
        assert got[protocol] == pytest.approx(expected)
