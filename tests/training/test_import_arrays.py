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
    weights = np.zeros(len(keys), dtype=np.int64)
    weights[[3, 17]] = [5, 9]  # of the keys aiming at slot 0, 17 takes it, then 3
    weighted = arrays.HashIndex(keys, weights)
    assert (weighted.lookup(keys[rows]) == rows).all()
    assert weighted.codes[:2].tolist() == [17, 3]


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


@pytest.mark.parametrize("parts", [True, False])
@pytest.mark.parametrize("timed", [True, False])
def test_rows_sort_by_user_then_time_then_log_order(monkeypatch, timed, parts):
    monkeypatch.setattr(arrays, "SORT_ROWS", 300 if parts else 10**9)  # parts of users sorted apart, or one sort
    monkeypatch.setattr(arrays, "CHUNK", 300)
    rng = np.random.default_rng(1)
    users = rng.integers(0, 50, 2_000).astype(np.int32)
    users[rng.random(2_000) < 0.3] = 7  # one user with more rows than a part
    items = np.arange(2_000, dtype=np.int32)  # the item is the row's position in the log
    times = rng.integers(0, 5, 2_000).astype(np.float64)
    rows = arrays.Rows(users.copy(), items.copy(), times.copy() if timed else None)
    rows.sort()
    expected = sorted(range(2_000), key=lambda r: (users[r], times[r] if timed else 0, r))
    assert rows.items.tolist() == expected and rows.users.tolist() == users[expected].tolist()


def test_radix_argsort_is_numpys_stable_argsort():
    rng = np.random.default_rng(2)
    for n, high in [(0, 1), (1, 1), (50_000, 30), (200_000, 2**62)]:  # torch takes its radix sort from 32 k rows
        key = rng.integers(0, high, n, dtype=np.int64)
        assert np.array_equal(arrays.radix_argsort(key, threads=2), np.argsort(key, kind="stable"))


@pytest.mark.parametrize("n_parts", [3, 300])  # part numbers in 8 or 16 bits
def test_rows_grouped_by_part_keep_their_log_order(monkeypatch, n_parts):
    monkeypatch.setattr(arrays, "CHUNK", 700)  # a part's rows come from several chunks
    part = np.random.default_rng(3).integers(0, n_parts, 5_000).astype(np.uint8 if n_parts <= 256 else np.uint16)
    part[part == 1] = 2  # a part without rows
    rows, bounds = arrays.group_by_part(part, n_parts)
    assert np.array_equal(rows, np.argsort(part, kind="stable"))
    assert np.array_equal(bounds, np.searchsorted(np.sort(part), np.arange(n_parts + 1)))


def cores_by_recount(users, items, n_users, n_items, kcore, min_length):
    """The k-core as first written: every step counts the live rows of every code again."""
    alive = np.ones(len(users), dtype=bool)
    removed = [0, 0]

    def delete(codes, n, below):
        if below <= 0:
            return 0
        gone = alive & (np.bincount(codes[alive], minlength=n)[codes] < below)
        alive[gone] = False
        return int(gone.sum())

    passes = 0
    while kcore:
        passes += 1
        k = delete(items, n_items, kcore)
        removed[0] += k
        if not k and passes > 1:
            break
        k = delete(users, n_users, kcore)
        removed[0] += k
        m = delete(users, n_users, min_length) if min_length > kcore else 0
        removed[1] += m
        if not k + m:
            break
    if min_length and not kcore:
        removed[1] += delete(users, n_users, min_length)
    return alive, passes, removed


@pytest.mark.parametrize(("kcore", "min_length"), [(3, 0), (4, 9), (0, 6), (5, 2), (0, 0)])
def test_cores_keep_what_recounting_every_step_keeps(kcore, min_length):
    rng = np.random.default_rng(kcore * 10 + min_length)
    n_users, n_items = 300, 200
    users = rng.integers(0, n_users, 1_200).astype(np.int32)  # about 4 rows a user
    items = (rng.zipf(1.5, 1_200) % n_items).astype(np.int32)  # many items with a row or two: several passes
    cores = arrays.Cores(kcore, min_length)
    alive = cores.run(users, items, n_users, n_items)
    expected, passes, (kcore_removed, length_removed) = cores_by_recount(users, items, n_users, n_items, kcore,
                                                                          min_length)
    assert np.array_equal(alive, expected)
    assert (cores.passes, cores.kcore_removed, cores.length_removed) == (passes, kcore_removed, length_removed)
    if kcore == 3:
        assert passes >= 3


def test_popularity_order_breaks_ties_by_code_and_skips_items_without_rows():
    ranked, new_id = arrays.popularity_order(np.array([3, 1, 3, 0, 1, 4], dtype=np.int32), 5)
    assert ranked.tolist() == [1, 3, 0, 4] and new_id.tolist() == [3, 1, 0, 2, 4]


def test_selected_lines_are_copied_in_the_order_asked(tmp_path):
    from elcrec.training.dataset import write_lines

    write_lines(tmp_path / "all.txt", ["a", "bb", "", "dé", "e"], "id")
    arrays.write_selected_lines(tmp_path / "all.txt", np.array([3, 0, 2, 4]), tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "dé\na\n\ne\n"


def test_a_direct_index_finds_integer_ids_over_their_range_and_refuses_a_wide_one():
    ids = np.array([10, -3, 7, 2, 100], dtype=np.int64)  # in code order, as numbered
    index = arrays.DirectIndex(ids)
    assert arrays.DirectIndex.fits(ids) and arrays.DirectIndex.bytes_for(ids) == 104 * 4
    assert index.lookup(np.array([100, -3, -3, 10, 2, 7])).tolist() == [4, 1, 1, 0, 3, 2]
    wide = np.array([0, 2**40], dtype=np.int64)
    assert not arrays.DirectIndex.fits(wide)  # a table over 2^40 slots: the hashes instead
    assert arrays.DirectIndex.fits(np.arange(0, 4_000_000, 4))  # 4 slots an id
    assert not arrays.DirectIndex.fits(np.arange(0, 5_000_000, 5))
