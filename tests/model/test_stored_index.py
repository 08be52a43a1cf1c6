"""An item index stored with the artifact: built from the weights, checksummed, refused when corrupt."""

import json

import faiss
import numpy as np
import pytest
import torch

from elcrec.model.artifact import INDEX, ArtifactError, ManifestInfo, Store, load_artifact, sha256_file
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.model.item_index import build_item_index, item_rows, read_item_index, write_item_index

N = 300
IDS = [None] + [f"item-{i}" for i in range(1, N + 1)] + [None]


def model(seed: int = 0) -> ELCRec:
    torch.manual_seed(seed)
    return ELCRec(ModelConfig(n_items=N, n_layers=1, n_intents=3, d=16, max_len=5))


def rewrite_manifest(version, change) -> None:
    manifest = json.loads((version / "manifest.json").read_text())
    change(manifest)
    (version / "manifest.json").write_text(json.dumps(manifest))


def test_stored_index_holds_the_item_rows_and_is_listed_in_the_manifest(tmp_path):
    m = model()
    v = Store(tmp_path).write_version(m, IDS, ManifestInfo(), index_spec="HNSW8")
    manifest = json.loads((v / "manifest.json").read_text())
    assert manifest["index"] == {"spec": "HNSW8", "file": INDEX}
    assert manifest["files"][INDEX] == sha256_file(v / INDEX)
    art = load_artifact(v)
    assert art.index_spec == "HNSW8" and art.index_path == v / INDEX
    index = read_item_index(v / INDEX, N, 16)
    faiss.ParameterSpace().set_index_parameters(index, "efSearch=300")  # wide enough to be exact here
    items = item_rows(m.item_table().detach().numpy())
    _, labels = index.search(items[:20], 1)
    np.testing.assert_array_equal(labels[:, 0], np.arange(20))  # label l is table row l + 1


def test_version_without_index_still_loads_and_has_none(tmp_path):
    art = load_artifact(Store(tmp_path).write_version(model(), IDS, ManifestInfo()))
    assert art.index_spec is None and art.index_path is None


def test_corrupt_stored_index_is_refused(tmp_path):
    v = Store(tmp_path).write_version(model(), IDS, ManifestInfo(), index_spec="IVF4,Flat")
    data = bytearray((v / INDEX).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (v / INDEX).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="index.faiss is corrupt"):
        load_artifact(v)
    (v / INDEX).unlink()
    with pytest.raises(ArtifactError, match="missing index.faiss"):
        load_artifact(v)


def test_index_entry_and_checksum_must_come_together(tmp_path):
    v = Store(tmp_path).write_version(model(), IDS, ManifestInfo(), index_spec="Flat")
    rewrite_manifest(v, lambda m: m.pop("index"))
    with pytest.raises(ArtifactError, match="no index entry"):
        load_artifact(v)
    v = Store(tmp_path).write_version(model(), IDS, ManifestInfo(), index_spec="Flat")
    rewrite_manifest(v, lambda m: m["files"].pop(INDEX))
    with pytest.raises(ArtifactError, match="does not checksum index.faiss"):
        load_artifact(v)
    v = Store(tmp_path).write_version(model(), IDS, ManifestInfo(), index_spec="Flat")
    rewrite_manifest(v, lambda m: m["files"].update({"other.bin": "0" * 64}))
    with pytest.raises(ArtifactError, match="does not list the checksums"):
        load_artifact(v)


def test_bad_index_spec_writes_no_version(tmp_path):
    with pytest.raises(ArtifactError, match="invalid FAISS index spec 'Nope12'"):
        Store(tmp_path).write_version(model(), IDS, ManifestInfo(), index_spec="Nope12")
    assert Store(tmp_path).versions() == [] and not any(tmp_path.iterdir())


def test_index_of_another_catalog_is_refused_on_read(tmp_path):
    other = build_item_index(np.random.default_rng(0).normal(size=(N - 1, 16)).astype(np.float32), "Flat")
    write_item_index(other, tmp_path / INDEX)
    with pytest.raises(ValueError, match=f"indexes {N - 1} vectors of dimension 16; the model has {N} of 16"):
        read_item_index(tmp_path / INDEX, N, 16)
    (tmp_path / INDEX).write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not a readable FAISS index"):
        read_item_index(tmp_path / INDEX, N, 16)


def test_ivf_trained_on_a_sample_keeps_recall_against_exact_search():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(50, 16))
    items = (centers[rng.integers(50, size=8000)] + 0.3 * rng.normal(size=(8000, 16))).astype(np.float32)
    queries = (centers[rng.integers(50, size=100)] + 0.3 * rng.normal(size=(100, 16))).astype(np.float32)
    index = build_item_index(items, "IVF16,Flat")  # 8000 > 64 * 16 rows: k-means sees a sample
    assert index.ntotal == 8000
    faiss.extract_index_ivf(index).nprobe = 4
    _, got = index.search(queries, 10)
    truth = np.argsort(-(queries @ items.T), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), truth.tolist(), strict=True)])
    assert recall >= 0.9
