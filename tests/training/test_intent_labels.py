"""Labels and coherence of a model trained on data with planted intents, with a catalog whose genres are the
planted groups: each planted genre names one intent, and the intents' items are coherent in genre, not in a field
unrelated to the intents."""

from __future__ import annotations

import numpy as np
import torch

from elcrec.model.catalog import Catalog, item_categories
from elcrec.model.config import ModelConfig
from elcrec.model.intent_labels import version_labels
from elcrec.training.config import TrainConfig
from elcrec.training.data import eval_split
from elcrec.training.intent_health import (
    calibrate,
    coherence,
    fitted_centers,
    split_coherence,
    training_states,
)
from elcrec.training.synthetic import SyntheticSpec, generate, planted_item_intents
from elcrec.training.trainer import Trainer

SPEC = SyntheticSpec(n_users=1000, n_items=200, n_intents=4, seed=0)


def planted_catalog() -> Catalog:
    groups = planted_item_intents(SPEC)
    ids = tuple(str(i) for i in range(1, SPEC.n_items + 1))
    return Catalog(ids, tuple(f"Title {i}" for i in ids), ("genre", "shelf"), {
        "genre": tuple((f"genre {groups[i]}",) for i in range(1, SPEC.n_items + 1)),
        "shelf": tuple((f"shelf {i % 4}",) for i in range(1, SPEC.n_items + 1)),  # unrelated to the intents
    }, "planted")


def test_each_planted_genre_labels_one_fitted_intent_and_genre_is_coherent() -> None:
    torch.manual_seed(0)
    data, _ = generate(SPEC)
    mcfg = ModelConfig(n_items=data.n_items, d=32, n_layers=1, n_intents=4, pooling="real")
    model = Trainer(mcfg, TrainConfig(epochs=8, bucket=True), data, None, "cpu", log=lambda _: None,
                    progress=False).fit()
    states = training_states(model, data)
    intents = calibrate(states, fitted_centers(model, data, 4, seed=1), balance=False)
    cats = item_categories(planted_catalog(), [None, *(str(i) for i in range(1, SPEC.n_items + 1)), None])
    labels = version_labels(intents, states.mean(0), model.item_table().detach()[1:-1], cats)
    named = [[c.value for c in label.categories if c.field == "genre"] for label in labels]
    assert sorted(n[0] for n in named if n) == [f"genre {k}" for k in range(4)], [label.text for label in labels]
    assert all(c.field == "genre" for label in labels for c in label.categories)
    assert all(len(label.titles) == 3 and label.text.startswith("genre ") for label in labels)

    popularity = np.bincount(data.items, minlength=SPEC.n_items + 1)[1:]
    ev = eval_split(data, mcfg.max_len, "test")
    genre = split_coherence(model, ev, intents, cats, "genre", popularity)
    shelf = split_coherence(model, ev, intents, cats, "shelf", popularity)
    assert genre.ratio is not None and genre.ratio > 1.5 and genre.own > 0.6
    assert shelf.ratio is not None and shelf.ratio < 1.3


def test_coherence_is_one_for_lists_drawn_as_the_baseline_draws_them() -> None:
    cats = item_categories(planted_catalog(), [None, *(str(i) for i in range(1, SPEC.n_items + 1)), None])
    popularity = np.ones(SPEC.n_items)
    rng = np.random.default_rng(5)
    lists = np.stack([rng.choice(SPEC.n_items, 20, replace=False) for _ in range(400)])
    got = coherence(lists, cats, "genre", popularity, draws=400)
    assert abs(got.ratio - 1) < 0.05 if got.ratio is not None else False
    pure = np.array([[c for c in range(SPEC.n_items) if cats.values[cats.indices[cats.indptr[c]]] == ("genre", f"genre {k}")][:20]
                     for k in range(4)])
    assert coherence(pure, cats, "genre", popularity).own == 1.0
