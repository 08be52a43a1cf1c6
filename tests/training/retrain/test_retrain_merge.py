"""The pieces of the job without Redis: merging events, growing the vocabulary, warm start, scoring the
current model on a grown vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.model.events import decode_event
from elcrec.training.data import EvalSplit, Interactions, left_pad
from elcrec.training.evaluate import evaluate_split
from elcrec.training.event_log import stream_id_key
from elcrec.training.gate import evaluate_known
from elcrec.training.merge import merge
from elcrec.training.retrain_errors import RetrainError
from elcrec.training.trainer import copy_weights


def event(user: str, *items: str) -> tuple[str, dict[str, str]]:
    return "0-1", {"user": user, "items": json.dumps(list(items))}


def test_merge_grows_histories_users_and_items_keeping_rows() -> None:
    base = Interactions.from_sequences(["u1", "u2"], [[1, 2, 3], [3, 1]], n_items=3)
    base_ids = [None, "1", "2", "3", None]  # the benchmark file's integer ids
    current_ids = [None, "1", "2", "3", None]
    merged = merge(
        base,
        base_ids,
        current_ids,
        iter([event("u2", "2", "new-a"), event("u9", "new-b", "1"), event("u2", "new-b"), event("u1", "3")]),
    )
    assert merged.item_ids == [None, "1", "2", "3", "new-a", "new-b", None]
    assert merged.n_known == 3 and merged.new_items == ["new-a", "new-b"]
    data = merged.data
    assert data.users == ["u1", "u2", "u9"] and data.n_items == 5
    assert [data.sequence(u).tolist() for u in range(3)] == [[1, 2, 3, 3], [3, 1, 2, 4, 5], [5, 1]]
    assert (merged.events, merged.skipped, merged.new_users, merged.updated_users) == (4, 0, 1, 2)


def test_merge_maps_base_ids_through_the_current_vocabulary() -> None:
    # The current model knows "10" and "x" only; the base data (rows of another version) knows "x" and "y".
    base = Interactions.from_sequences(["a"], [[2, 1, 2]], n_items=2)
    merged = merge(base, [None, "y", "x", None], [None, "10", "x", None], iter([]))
    assert merged.item_ids == [None, "10", "x", "y", None]
    assert merged.data.sequence(0).tolist() == [2, 3, 2]


def test_malformed_stream_entries_are_skipped_and_counted() -> None:
    base = Interactions.from_sequences(["a"], [[1]], n_items=1)
    entries = [
        ("1-0", {"user": "a", "items": "not json"}),
        ("1-1", {"user": "a"}),
        ("1-2", {"user": "with space", "items": '["1"]'}),
        ("1-3", {"user": "a", "items": '["ok", "bad id"]'}),
        ("1-4", {"user": "a", "items": "[]"}),
        ("1-5", {"user": "a", "items": '["1", "2"]'}),
    ]
    merged = merge(base, [None, "1", None], [None, "1", None], iter(entries))
    assert (merged.events, merged.skipped) == (1, 5)
    assert merged.data.sequence(0).tolist() == [1, 1, 2]
    assert decode_event({"user": "u", "items": '["a"]'}) == ("u", ["a"])


def test_a_vocabulary_that_names_an_item_twice_is_refused() -> None:
    base = Interactions.from_sequences(["a"], [[1]], n_items=1)
    with pytest.raises(RetrainError, match="twice"):
        merge(base, [None, "1", None], [None, "1", "1", None], iter([]))


def test_stream_ids_compare_numerically() -> None:
    assert stream_id_key("1700000000000-10") > stream_id_key("1700000000000-9") > stream_id_key("999-99")


def test_warm_start_keeps_old_rows_moves_the_mask_and_inits_new_rows() -> None:
    torch.manual_seed(0)
    old = ELCRec(ModelConfig(n_items=5, d=16, n_layers=1, n_intents=3))
    with torch.no_grad():
        old.intent_centers.normal_()
        old.item_embeddings.weight.mul_(50)  # trained-looking rows, easy to tell from a fresh init
    new = ELCRec(ModelConfig(n_items=2005, d=16, n_layers=1, n_intents=3))
    assert copy_weights(new, old, n_known=5) == []
    w_old, w_new = old.item_embeddings.weight, new.item_embeddings.weight
    assert torch.equal(w_new[:6], w_old[:6]) and torch.equal(w_new[-1], w_old[-1])
    assert abs(w_new[6:-1].std().item() - 0.02) < 0.002  # new items: N(0, 0.02)
    assert torch.equal(new.intent_centers, old.intent_centers)
    assert torch.equal(new.blocks[0].ffn.dense_1.weight, old.blocks[0].ffn.dense_1.weight)


def test_the_current_model_never_hits_items_it_does_not_know() -> None:
    torch.manual_seed(0)
    model = ELCRec(ModelConfig(n_items=4, d=8, n_layers=1, n_intents=2, dropout=0.0, attn_dropout=0.0)).eval()
    histories = [np.array([1, 2]), np.array([1, 6]), np.array([5, 6])]  # rows 5, 6: items it does not know
    targets = np.array([3, 5, 2])
    split = EvalSplit(left_pad(histories, 50), targets, histories, np.arange(3))
    got = evaluate_known(model, split, n_known=4, vocab_size=8)
    assert got["HIT@20"] == pytest.approx(2 / 3)  # 6 scorable rows: a known target always hits @20
    # The two users with known targets score as the plain evaluation of their known histories does.
    kept = [0, 2]
    known = [histories[i][histories[i] <= 4] for i in kept]
    ref = evaluate_split(model, EvalSplit(left_pad(known, 50), targets[kept], known, np.arange(2)))[
        "reference"
    ]
    assert got["NDCG@10"] == pytest.approx(ref["NDCG@10"] * 2 / 3)


def test_a_warm_started_retrain_fine_tunes_at_a_tenth_of_the_learning_rate_unless_told() -> None:
    from elcrec.training.retrain import train_config

    saved = {"lr": 0.002, "epochs": 30, "rec_loss": "softmax"}  # the manifest's origin.train_config
    assert train_config(saved, {}, "real").lr == pytest.approx(0.0002)
    assert train_config(saved, {"lr": 0.005}, "real").lr == 0.005
    assert train_config(None, {}, "real").lr == pytest.approx(0.0001)  # no saved config: a tenth of the default


def test_an_imported_base_data_set_keeps_its_external_item_ids(tmp_path) -> None:
    from elcrec.training.importer import Engine, ImportSpec, import_logs
    from elcrec.training.merged_store import read_base

    log = tmp_path / "log.csv"
    log.write_text("user,item,ts\nu1,sku-b,1\nu1,sku-a,2\nu2,sku-b,1\nu2,sku-c,3\n")
    import_logs([log], tmp_path / "ds", ImportSpec(user="user", item="item", time="ts"), Engine("200MB", 1), False)
    data, ids, _ = read_base(tmp_path, tmp_path / "ds", None)
    assert ids[0] is None and ids[-1] is None and sorted(ids[1:-1]) == ["sku-a", "sku-b", "sku-c"]
    first = [ids[int(i)] for i in data.sequence(list(data.users).index("u1"))]
    assert first == ["sku-b", "sku-a"]  # the rows name the log's items, not str(row)
