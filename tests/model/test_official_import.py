"""Must show 1: the authors' Toys_and_Games checkpoint reproduces its published test numbers."""

import json

import pytest
import torch

from elcrec.model.official import CheckpointError, config_from_state, load_official, map_state_dict
from tests.support.cli import run_cli
from tests.support.shared_data import DATA, OFFICIAL_TOYS, need


def test_import_then_evaluate_reproduces_the_paper_to_four_decimals(tmp_path):
    ckpt, data = need(OFFICIAL_TOYS), need(DATA / "Toys_and_Games.txt")
    store = tmp_path / "S"
    imported = run_cli("import-official", str(ckpt), "--data", str(data), "--out", str(store), "--no-evaluate")
    assert imported.returncode == 0, imported.stderr
    result = run_cli("evaluate", str(store), "--data", str(data), "--protocol", "both", "--split", "test", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    got = {k: round(v, 4) for k, v in payload["metrics"].items()}
    assert got == {
        "HIT@5": 0.0585, "NDCG@5": 0.0403, "HIT@10": 0.0828, "NDCG@10": 0.0481, "HIT@20": 0.1138, "NDCG@20": 0.0560,
    }
    assert payload["protocol"] == "reference"
    # on this file no masked item reaches the top 20 (ELCREC.md section 8)
    assert {k: round(v, 4) for k, v in payload["by_protocol"]["strict"].items()} == got


def test_shapes_give_layers_intents_and_catalog():
    cfg = load_official(need(OFFICIAL_TOYS)).cfg
    assert (cfg.n_layers, cfg.n_intents, cfg.n_items, cfg.d, cfg.max_len, cfg.pooling) == (3, 512, 11924, 64, 50, "all")


def test_foreign_keys_and_non_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="unexpected key"):
        map_state_dict({"encoder.weird": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not an ELCRec"):
        config_from_state({"item_embeddings.weight": torch.zeros(5, 4)})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="not a loadable"):
        load_official(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_official(tmp_path / "missing.pt")


def test_a_pickle_that_runs_code_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_official(path)
    assert not marker.exists()
