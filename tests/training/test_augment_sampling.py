import numpy as np

from elcrec.training.augment import augment_batch
from elcrec.training.data import parse_lines
from elcrec.training.sampling import NegativeSampler


def test_every_view_is_a_crop_a_mask_or_a_reorder_of_its_row():
    rng = np.random.default_rng(0)
    T = 12
    inputs = np.zeros((300, T), dtype=np.int64)
    for i in range(300):
        n = rng.integers(1, T + 1)
        inputs[i, T - n :] = rng.choice(np.arange(1, 100), size=n, replace=False)
    views = augment_batch(inputs, rng)
    kinds = set()
    for row, view in zip(inputs, views, strict=True):
        real = row[row > 0]
        n = len(real)
        kept = view[view > 0]
        if view.tolist() == row.tolist():
            continue  # every augmentation can be the identity for very short rows
        if len(kept) == max(1, int(0.2 * n)) and (view[: T - len(kept)] == 0).all() and \
                any(real[s : s + len(kept)].tolist() == kept.tolist() for s in range(n)):
            kinds.add("crop")
        elif (view[: T - n] == 0).all() and sorted(kept.tolist()) == sorted(real.tolist()) and len(kept) == n:
            kinds.add("reorder")
            diff = np.flatnonzero(view[T - n :] != real)
            assert diff.max() - diff.min() + 1 <= int(0.2 * n)
        else:
            assert (view[view > 0] == row[view > 0]).all()  # masking only zeroes positions
            assert (view[T - n :] == 0).sum() == int(0.7 * n)
            kinds.add("mask")
    assert kinds == {"crop", "mask", "reorder"}


def test_negatives_never_come_from_the_users_sequence():
    data = parse_lines(["a 1 2 3 4 5 6 7 8", "b 9 10"])  # N = 10, draws from 1..11
    sampler = NegativeSampler(data, vocab_size=12)
    neg = sampler.sample(np.array([0, 1] * 50), (100, 20), np.random.default_rng(0))
    assert neg.min() >= 1 and neg.max() <= 11
    assert not np.isin(neg[0::2], np.arange(1, 9)).any()
    assert not np.isin(neg[1::2], [9, 10]).any()
    assert set(np.unique(neg[0::2])) == {9, 10, 11}
