"""model/manifest.py: the manifest typed both ways. What is written reads back the same; of the description, what
is missing or malformed becomes None or the documented default, never a wrong value; a document without its core is
refused."""

from __future__ import annotations

import json

import pytest

from elcrec.model.config import ModelConfig
from elcrec.model.intents import DEFAULT_TEMPERATURE
from elcrec.model.manifest import Manifest, ManifestError, ManifestInfo


def test_well_formed_fields_are_read_typed() -> None:
    info = ManifestInfo.read(
        {
            "origin": {"kind": "trained", "train_config": {"intent_temperature": 0.05, "lr": 0.001}},
            "metrics": {"test": {"reference": {"NDCG@5": 0.05}}},
            "data": {"source": "Beauty.txt"},
            "popular_items": ["a", "b", 3, None, "c"],
            "intent_shares": [0.5, 0.25, 0.25],
            "intent_mean_state": [0, 1.5],
            "intent_health": {"used": 3},
        },
        n_intents=3,
        d=2,
    )
    assert info.intent_temperature == 0.05 and info.train_config == {"intent_temperature": 0.05, "lr": 0.001}
    assert info.popular_items == ("a", "b", "c")
    assert info.intent_shares == (0.5, 0.25, 0.25) and info.intent_mean_state == (0.0, 1.5)
    assert info.intent_health == {"used": 3} and info.data["source"] == "Beauty.txt"


def test_missing_or_malformed_fields_become_none_or_the_default() -> None:
    empty = ManifestInfo.read({}, n_intents=3, d=2)
    assert (empty.origin, empty.train_config, empty.metrics, empty.data) == ({}, None, None, {})
    assert empty.popular_items == () and empty.intent_temperature == DEFAULT_TEMPERATURE
    bad = ManifestInfo.read(
        {
            "origin": {"train_config": {"intent_temperature": -1}},
            "intent_shares": [0.5, 0.5],  # from another K
            "intent_mean_state": [1.0, "x"],
            "intent_health": [1, 2],
            "popular_items": "abc",
        },
        n_intents=3,
        d=2,
    )
    assert bad.intent_shares is None and bad.intent_mean_state is None and bad.intent_health is None
    assert bad.popular_items == () and bad.intent_temperature == DEFAULT_TEMPERATURE
    assert ManifestInfo.read({"intent_shares": [True, 0.5, 0.5]}, 3, 2).intent_shares is None


def test_a_version_made_from_another_reads_its_parents_training_settings() -> None:
    trained = {"kind": "trained", "train_config": {"intent_temperature": 0.05, "seed": 3}}
    fitted = {"kind": "intents-fit", "parent_origin": trained}
    info = ManifestInfo.read({"origin": {"kind": "calibrated", "parent_origin": fitted}}, n_intents=3, d=2)
    assert info.train_config == trained["train_config"] and info.intent_temperature == 0.05
    orphan = ManifestInfo.read({"origin": {"kind": "calibrated", "parent_origin": None}}, n_intents=3, d=2)
    assert orphan.train_config is None and orphan.intent_temperature == DEFAULT_TEMPERATURE


def test_what_is_written_reads_back_the_same_and_unknown_entries_are_kept() -> None:
    info = ManifestInfo(
        origin={"kind": "trained", "train_config": {"intent_temperature": 0.2}}, data={"users": 3},
        metrics={"test": {}}, popular_items=("a", "b"), intent_shares=(0.5, 0.25, 0.25), intent_mean_state=(0.0, 1.0),
        intent_calibration={"users": 3}, intent_health={"used": 3}, pooling="real", software={"torch": "x"},
        extra={"written_by_a_newer_release": [1, 2]},
    )
    manifest = Manifest("v0007", ModelConfig(n_items=10, n_intents=3, d=2), {"weights.safetensors": "ab"}, info,
                        created_at="2026-01-01T00:00:00Z", parent="v0006", catalog={"file": "catalog.jsonl"})
    document = json.loads(json.dumps(manifest.to_json()))  # as the file holds it
    assert document["n_items"] == 10 and document["written_by_a_newer_release"] == [1, 2]
    assert Manifest.read(document, "manifest.json", "v0000") == manifest
    assert Manifest.read(document, "manifest.json", "v0000").info.intent_temperature == 0.2


def test_a_document_without_its_core_is_refused_by_name() -> None:
    good = Manifest("v0001", ModelConfig(n_items=10), {}, ManifestInfo()).to_json()
    for broken, what in [([], "not a JSON object"), ({**good, "format_version": 2}, "format_version 2"),
                         ({**good, "files": None}, "checksums"), ({**good, "model_config": {"n_items": -1}}, "model_config")]:
        with pytest.raises(ManifestError, match=what):
            Manifest.read(broken, "store/v0001/manifest.json", "v0001")
