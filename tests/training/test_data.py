import numpy as np
import pytest

from training.data import (
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
