"""bench.intent_k's pieces: the subsample, the CSV reader and the K it keeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.intent_k import from_csv, pick, subsample
from elcrec.training.data import Interactions


def test_a_subsample_keeps_whole_users_and_renumbers_their_items() -> None:
    data = Interactions.from_sequences(["a", "b", "c"], [[5, 9], [9, 7, 5], [2]], 9)
    got = subsample(data, 2, seed=3)
    assert got.n_users == 2 and set(got.users) <= {"a", "b", "c"}
    items = np.concatenate([got.sequence(u) for u in range(got.n_users)])
    assert got.n_items == len(set(items.tolist())) and set(items.tolist()) == set(range(1, got.n_items + 1))


def test_a_csv_log_becomes_each_users_items_in_time_order(tmp_path: Path) -> None:
    csv = tmp_path / "log.csv"
    csv.write_text("user,item,rating,timestamp\nu1,m9,5,30\nu2,m9,3,5\nu1,m4,4,10\nu1,m7,1,10\n")
    got = from_csv(csv)
    assert got.users == ["u1", "u2"] and got.n_items == 3
    assert got.sequence(0).tolist() == [1, 2, 3] and got.sequence(1).tolist() == [3]  # m4, m7 (file order), m9


def _run(k: int, ndcg: float, effective: float, lift: float) -> dict:
    return {"k": k, "valid_ndcg20": ndcg, "valid_intents": {"effective": effective, "lift": lift}}


def test_the_k_kept_is_the_best_lift_among_even_ones_that_rank_as_well() -> None:
    rows = [_run(8, 0.030, 8.0, 2.0), _run(16, 0.030, 15.9, 2.4), _run(32, 0.027, 31.0, 2.9),
            _run(64, 0.030, 20.0, 3.5)]
    # 32: NDCG 10% below the best; 64: effective below K / 2
    got = pick(rows)
    assert got is not None and got["k"] == 16
    assert pick([_run(64, 0.03, 10.0, 3.0)]) is None
