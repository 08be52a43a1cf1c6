"""Readable intent labels from the catalog: the categories that set an intent's characteristic items apart, and its
most characteristic titles. Arrays in, labels out; computed once per version where it is loaded (the service's
bundle, the report, the bench), never per request.

An intent's characteristic items are its top LABEL_TOP items by characteristic score (model/intents.py
characteristic_items: what sets the intent's users apart from the average user, the list GET /v1/intents shows).
A category value's lift is its share among those of them the catalog knows against its share among all the
model's items the catalog knows (the plain catalog, not weighted by popularity: the characteristic lists are lists
of items, not of interactions, and are not drawn by popularity). A value must hold at least MIN_SUPPORT of the
intent's characteristic items, so that a value of three items in the whole catalog cannot win by lift alone, and
be over-represented beyond chance: its count at least MIN_Z binomial standard deviations above what a list of as
many items drawn from the catalog holds (else a common value that happens to be a little more frequent in one
list, lift 1.2 on 12 of 50 items, would name the intent). The label names up to LABEL_CATEGORIES such values,
highest lift first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from elcrec.model.catalog import ItemCategories
from elcrec.model.intents import IntentSpace, characteristic_items

LABEL_TOP = 50  # characteristic items a label is made from
MIN_SUPPORT = 5  # of them at least this many must hold a category value for it to name the intent
MIN_Z = 3.0  # and its count must lie this many binomial standard deviations above chance
LABEL_CATEGORIES = 3
LABEL_TITLES = 3


@dataclass(frozen=True)
class LabelCategory:
    field: str
    value: str
    support: int  # characteristic items (known to the catalog) holding it
    share: float  # support / characteristic items known to the catalog
    catalog_share: float  # its share among the model's items the catalog knows
    lift: float  # share / catalog_share

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "support": self.support, "share": round(self.share, 4),
                "catalog_share": round(self.catalog_share, 6), "lift": round(self.lift, 3)}


@dataclass(frozen=True)
class IntentLabel:
    text: str  # e.g. "Comedy (genre), Pixar (studio) - Toy Story; Up; Cars"
    categories: tuple[LabelCategory, ...]
    titles: tuple[str, ...]  # of its most characteristic items, most characteristic first

    def holds(self, field: str, value: str) -> bool:
        return any(c.field == field and c.value == value for c in self.categories)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "categories": [c.to_dict() for c in self.categories], "titles": list(self.titles)}


def value_counts(columns: np.ndarray, cats: ItemCategories) -> np.ndarray:
    """(m,) item columns -> (V,) how many of them hold each value."""
    starts, ends = cats.indptr[columns], cats.indptr[columns + 1]
    lengths = ends - starts
    if lengths.sum() == 0:
        return np.zeros(len(cats.values), dtype=np.int64)
    # positions starts[j] .. ends[j] - 1 of every item, concatenated
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    return np.bincount(cats.indices[offsets], minlength=len(cats.values))


def catalog_shares(cats: ItemCategories) -> np.ndarray:
    """(V,) each value's share among the model's items the catalog knows."""
    counts = np.bincount(cats.indices, minlength=len(cats.values)).astype(np.float64)
    return counts / max(int(cats.known.sum()), 1)


def category_lift(
    top: np.ndarray, cats: ItemCategories, min_support: int = MIN_SUPPORT, n: int = LABEL_CATEGORIES,
    min_z: float = MIN_Z,
) -> list[list[LabelCategory]]:
    """(K, m) characteristic item columns, best first -> per intent its up to n values with support >= min_support
    and a count min_z standard deviations above chance (module docstring), highest lift first (ties: more support,
    then catalog order)."""
    if top.ndim != 2:
        raise ValueError(f"top must be (K, m) item columns, got shape {top.shape}")
    background = catalog_shares(cats)
    out = []
    for row in top:
        cols = row[cats.known[row]]
        counts = value_counts(cols, cats)
        m = len(cols)
        expected = m * background
        spread = np.sqrt(expected * (1 - background))
        over = (counts - expected) >= min_z * np.maximum(spread, 1e-12)
        ok = np.flatnonzero((counts >= min_support) & (background > 0) & over) if m else np.array([], dtype=np.int64)
        share = counts[ok] / max(m, 1)
        lifts = share / background[ok]
        order = sorted(range(len(ok)), key=lambda j: (-lifts[j], -counts[ok[j]], ok[j]))
        out.append([
            LabelCategory(cats.values[ok[j]][0], cats.values[ok[j]][1], int(counts[ok[j]]), float(share[j]),
                          float(background[ok[j]]), float(lifts[j]))
            for j in order
        ][:n])
    return out


def intent_labels(
    top: np.ndarray, cats: ItemCategories, min_support: int = MIN_SUPPORT, n_categories: int = LABEL_CATEGORIES,
    n_titles: int = LABEL_TITLES, min_z: float = MIN_Z,
) -> list[IntentLabel]:
    """(K, m) characteristic item columns, best first -> each intent's label (module docstring)."""
    labels = []
    for row, categories in zip(top, category_lift(top, cats, min_support, n_categories, min_z), strict=True):
        titles = tuple(t for c in row if (t := cats.titles[int(c)]) is not None)[:n_titles]
        named = ", ".join(f"{c.value} ({c.field})" for c in categories)
        text = " - ".join(part for part in (named, "; ".join(titles)) if part) or "(no catalog entries)"
        labels.append(IntentLabel(text, tuple(categories), titles))
    return labels


def version_labels(
    space: IntentSpace, mean_state: torch.Tensor | None, items: torch.Tensor, cats: ItemCategories,
    top: int = LABEL_TOP,
) -> list[IntentLabel]:
    """The labels of a version's intents: its intents and mean user state (None: described by themselves), its real
    item rows (N, d) and its catalog over them."""
    if items.shape[0] != cats.n_items:
        raise ValueError(f"{items.shape[0]} item rows, the catalog arrays cover {cats.n_items}")
    return intent_labels(characteristic_items(space, mean_state, items, top).numpy(), cats)
