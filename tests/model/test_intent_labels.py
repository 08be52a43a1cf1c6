"""Intent labels from the catalog: the over-represented categories of an intent's characteristic items, with enough
support, and its titles."""

from __future__ import annotations

import numpy as np

from elcrec.model.catalog import Catalog, item_categories
from elcrec.model.intent_labels import MIN_SUPPORT, category_lift, intent_labels, value_counts

N = 60


def planted() -> tuple[Catalog, list[str | None]]:
    """60 items in three genres of 20 (item c in genre c % 3), a rare "cult" value on items 0, 3 and 6, and a
    "color" field unrelated to the genres."""
    ids = tuple(f"i{c}" for c in range(N))
    genre = tuple((f"g{c % 3}", *(("cult",) if c in (0, 3, 6) else ())) for c in range(N))
    color = tuple((("red", "blue")[c % 2],) for c in range(N))
    cat = Catalog(ids, tuple(f"Title {c}" for c in range(N)), ("genre", "color"), {"genre": genre, "color": color}, "x")
    return cat, [None, *ids, None]


def test_value_counts_count_each_value_over_the_listed_items() -> None:
    cat, rows = planted()
    cats = item_categories(cat, rows)
    counts = value_counts(np.array([0, 3, 1]), cats)
    got = {cats.values[v]: int(c) for v, c in enumerate(counts) if c}
    assert got == {("genre", "g0"): 2, ("genre", "cult"): 2, ("genre", "g1"): 1, ("color", "red"): 1,
                   ("color", "blue"): 2}


def test_the_planted_category_labels_each_intent_and_a_rare_one_cannot_win() -> None:
    cat, rows = planted()
    cats = item_categories(cat, rows)
    # intent k lists 16 items of genre k (intent 0's start with the three cult items) and 4 of the others
    top = np.array([[c for c in range(N) if c % 3 == k][:16] + [c for c in range(N) if c % 3 != k][:4]
                    for k in range(3)])
    labels = intent_labels(top, cats)
    for k, label in enumerate(labels):
        assert [(c.field, c.value) for c in label.categories] == [("genre", f"g{k}")]
        assert label.holds("genre", f"g{k}") and not label.holds("color", "red")
        assert label.titles == tuple(f"Title {c}" for c in top[k][:3])
        assert label.text.startswith(f"g{k} (genre) - Title {top[k][0]}")
    # cult: 3 of intent 0's 20 items against 3 of 60 in the catalog, lift 3.3 > g0's 2.4: below MIN_SUPPORT (and, on
    # so few items, within chance)
    assert MIN_SUPPORT > 3
    with_rare = category_lift(top, cats, min_support=3, min_z=1)[0]
    assert [c.value for c in with_rare] == ["cult", "g0"] and with_rare[0].lift > with_rare[1].lift


def test_items_the_catalog_does_not_know_are_left_out_of_the_shares() -> None:
    cat, rows = planted()
    rows = [None, *[r if c < 30 else f"new{c}" for c, r in enumerate(rows[1:-1])], None]
    cats = item_categories(cat, rows)
    top = np.array([[c for c in range(30) if c % 3 == 0] + list(range(30, 40))])
    (only,) = category_lift(top, cats)[0]
    assert (only.value, only.support, only.share) == ("g0", 10, 1.0)
