import numpy as np
import pytest

from elcrec.training.data import (
    DataError,
    eval_split,
    left_pad,
    parse_lines,
    prefix_split,
    read_interactions,
    train_split,
)


def test_splits_follow_leave_one_out():
    data = parse_lines(["u1 1 2 3 4 5 6", "u2 7 8 9 10 11"])
    tr = train_split(data, max_len=5)
    assert tr.inputs[0].tolist() == [0, 0, 1, 2, 3] and tr.targets[0].tolist() == [0, 0, 2, 3, 4]
    va, te = eval_split(data, 5, "valid"), eval_split(data, 5, "test")
    assert va.inputs[0].tolist() == [0, 1, 2, 3, 4] and va.targets[0] == 5
    assert te.inputs[0].tolist() == [1, 2, 3, 4, 5] and te.targets[0] == 6
    assert te.seen[0].tolist() == [1, 2, 3, 4, 5]
    assert data.n_items == 11


def test_prefix_samples_hold_the_same_targets_one_per_row():
    data = parse_lines(["u1 1 2 3 4 5 6", "u2 7 8 9 10 11", "u3 12 13 14"])
    pre = prefix_split(data, max_len=2)
    assert pre.inputs.tolist() == [[0, 1], [1, 2], [2, 3], [0, 7], [7, 8]]  # the last T items of each prefix
    assert pre.targets.tolist() == [[0, 2], [0, 3], [0, 4], [0, 8], [0, 9]]  # the next item, last position only
    assert pre.users.tolist() == [0, 0, 0, 1, 1]  # u3 (3 items) has nothing to train on, as in train_split
    seq = train_split(data, max_len=5)
    assert sorted(pre.targets[:, -1].tolist()) == sorted(seq.targets[seq.targets > 0].tolist())


def test_inputs_keep_the_most_recent_items():
    assert left_pad([np.arange(1, 8)], 3).tolist() == [[5, 6, 7]]


def test_lines_with_fewer_than_two_fields_are_skipped():
    data = parse_lines(["u1 1 2 3", "lonely", "", "u2 4 5"])
    assert data.users == ["u1", "u2"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["u1 1 2 x"], "line 1: item id 'x' is not an integer"),
        (["u1 1 2", "u2 0 3"], "line 2: item id 0 is out of range"),
        (["u1 1 2", "u1 3 4"], "line 2: user 'u1' already appeared on line 1"),
        (["justone"], "holds no user"),
    ],
)
def test_malformed_data_names_the_line_and_the_problem(lines, message):
    with pytest.raises(DataError, match=message):
        parse_lines(lines, "f.txt")


def test_ids_beyond_the_catalog_are_refused():
    with pytest.raises(DataError, match=r"out of range \(1..3\)"):
        parse_lines(["u 1 2 9"], n_items=3)


def test_empty_missing_and_binary_files(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="is empty"):
        read_interactions(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="does not exist"):
        read_interactions(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DataError, match="not text"):
        read_interactions(tmp_path / "bin.txt")


def test_rows_built_per_batch_equal_the_padded_matrices_of_before():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 50, size=rng.integers(1, 30)) for _ in range(200)]
    data = parse_lines([f"u{u} " + " ".join(map(str, s)) for u, s in enumerate(seqs)])
    T = 8
    kept = [s for s in seqs if len(s) >= 4]
    tr = train_split(data, T)
    assert np.array_equal(np.asarray(tr.inputs), left_pad([s[:-3] for s in kept], T))
    assert np.array_equal(np.asarray(tr.targets), left_pad([s[1:-2] for s in kept], T))
    idx = rng.permutation(len(tr.users))[:17]
    assert np.array_equal(tr.inputs[idx], left_pad([kept[i][:-3] for i in idx], T))
    assert np.array_equal(tr.lengths, (np.asarray(tr.inputs) > 0).sum(axis=1))
    pre = prefix_split(data, T)
    prefixes = [(s[:k], s[k]) for s in kept for k in range(1, len(s) - 2)]
    assert np.array_equal(np.asarray(pre.inputs), left_pad([p for p, _ in prefixes], T))
    assert np.asarray(pre.targets)[:, -1].tolist() == [t for _, t in prefixes]
    te = eval_split(data, T, "test")
    assert np.array_equal(np.asarray(te.inputs), left_pad([s[:-1] for s in seqs if len(s) >= 2], T))
    assert [h.tolist() for h in te.seen] == [s[:-1].tolist() for s in seqs if len(s) >= 2]
    rows, cols = te.seen.flat(3, 9)
    assert cols.tolist() == np.concatenate([h for h in te.seen[3:9]]).tolist()
    assert rows.tolist() == np.repeat(np.arange(6), [len(h) for h in te.seen[3:9]]).tolist()


def test_a_directory_without_dataset_json_is_refused_with_the_remedy(tmp_path):
    with pytest.raises(DataError, match="directory without dataset.json.*elcrec data import"):
        read_interactions(tmp_path)
