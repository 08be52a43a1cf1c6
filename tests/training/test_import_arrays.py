import numpy as np
import pytest

from elcrec.training import import_arrays as arrays


def test_hash_index_finds_every_key_whatever_slot_it_had_to_take():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**63, 5_000, dtype=np.uint64)
    keys[:40] = np.arange(1, 41, dtype=np.uint64) << np.uint64(40)  # same low bits: all aim at slot 0
    keys[40] = 0  # the value an empty slot holds
    index = arrays.HashIndex(keys)
    rows = rng.integers(0, len(keys), 50_000)
    assert (index.lookup(keys[rows]) == rows).all()


def test_time_rank_keeps_the_order_and_the_ties_of_the_times():
    whole = np.array([1_600_000_050.0, 1_600_000_000.0, 1_600_000_050.0, 1_600_000_001.0])
    rank, bits = arrays.time_rank(whole, 63)
    assert rank.tolist() == [50, 0, 50, 1] and bits == 6
    fractions = np.array([2.5, -1.0, np.nan, 2.5, 0.0, -0.0, np.inf])
    rank, _ = arrays.time_rank(fractions, 63)
    assert rank.tolist() == [2, 0, 4, 2, 1, 1, 3]
    # whole seconds too wide for the bits left beside the user: ranked instead
    rank, bits = arrays.time_rank(np.array([0.0, 2.0**52, 7.0]), 40)
    assert rank.tolist() == [0, 2, 1] and bits == 2


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("timed", [True, False])
def test_rows_sort_by_user_then_time_then_log_order(monkeypatch, timed, split):
    monkeypatch.setattr(arrays, "SPLIT_ROWS", 100 if split else 10**9)  # two halves on two threads, or one sort
    monkeypatch.setattr(arrays, "CHUNK", 300)
    rng = np.random.default_rng(1)
    users = rng.integers(0, 50, 2_000).astype(np.int32)
    items = np.arange(2_000, dtype=np.int32)  # the item is the row's position in the log
    times = rng.integers(0, 5, 2_000).astype(np.float64)
    rows = arrays.Rows(users.copy(), items.copy(), times.copy() if timed else None)
    rows.sort()
    expected = sorted(range(2_000), key=lambda r: (users[r], times[r] if timed else 0, r))
    assert rows.items.tolist() == expected and rows.users.tolist() == users[expected].tolist()


def test_popularity_order_breaks_ties_by_code_and_skips_items_without_rows():
    ranked, new_id = arrays.popularity_order(np.array([3, 1, 3, 0, 1, 4], dtype=np.int32), 5)
    assert ranked.tolist() == [1, 3, 0, 4] and new_id.tolist() == [3, 1, 0, 2, 4]


def test_selected_lines_are_copied_in_the_order_asked(tmp_path):
    from elcrec.training.dataset import write_lines

    write_lines(tmp_path / "all.txt", ["a", "bb", "", "dé", "e"], "id")
    arrays.write_selected_lines(tmp_path / "all.txt", np.array([3, 0, 2, 4]), tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "dé\na\n\ne\n"
