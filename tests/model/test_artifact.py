import json

import pytest
import torch

from elcrec.model.artifact import (
    ArtifactError,
    current_version,
    list_versions,
    load_artifact,
    resolve,
    write_version,
)
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec

IDS = [None] + [str(i) for i in range(1, 21)] + [None]


def small_model(seed: int = 0) -> ELCRec:
    torch.manual_seed(seed)
    return ELCRec(ModelConfig(n_items=20, n_layers=1, n_intents=3, d=8, max_len=5))


def test_write_then_load_round_trips_and_moves_current(tmp_path):
    store = tmp_path / "store"
    m1, m2 = small_model(0), small_model(1)
    v1 = write_version(store, m1, IDS, {"metrics": {"x": 1}})
    v2 = write_version(store, m2, IDS, {})
    assert [v1.name, v2.name] == ["v0001", "v0002"] == list_versions(store)
    assert current_version(store) == "v0002"
    art = load_artifact(store)
    assert art.version == "v0002" and art.item_ids == IDS
    assert art.manifest["parent"] == "v0001"
    for k, v in m2.state_dict().items():
        assert torch.equal(art.model.state_dict()[k], v)
    assert load_artifact(v1).manifest["metrics"] == {"x": 1}
    assert not any(p.name.startswith(".tmp") for p in store.iterdir())


def test_an_intent_calibration_round_trips_and_a_wrong_one_is_refused(tmp_path):
    from elcrec.model.artifact import INTENTS, sha256_file
    from elcrec.model.intents import IntentSpace

    m = small_model()
    bias, profiles = torch.tensor([0.1, -0.2, 0.0]), torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    v = write_version(tmp_path, m, IDS, {}, intents=IntentSpace(m.intent_centers.detach(), bias, profiles))
    art = load_artifact(v)
    assert torch.equal(art.intents.bias, bias) and torch.equal(art.intents.profiles, profiles)
    assert art.manifest["intent_calibration"] == {"file": INTENTS, "holds": ["bias", "profiles"]}
    # without one: the centers as they are
    plain = load_artifact(write_version(tmp_path, m, IDS, {}))
    assert plain.intents.bias is None and plain.intents.profiles is None and plain.calibration is None
    # a calibration of another shape (checksummed as it is) is refused by name
    from safetensors.torch import save_file

    save_file({"bias": torch.zeros(5)}, str(v / INTENTS))
    manifest = json.loads((v / "manifest.json").read_text())
    manifest["files"][INTENTS] = sha256_file(v / INTENTS)
    (v / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="intents.safetensors holds 'bias' of shape"):
        load_artifact(v)
    with pytest.raises(ArtifactError, match="shape"):
        write_version(tmp_path, m, IDS, {}, intents=IntentSpace(torch.zeros(4, 8), torch.zeros(4)))


def test_corrupt_weights_are_refused_with_a_clear_message(tmp_path):
    v = write_version(tmp_path, small_model(), IDS, {})
    data = bytearray((v / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (v / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupt"):
        load_artifact(v)


def test_truncated_weights_are_refused(tmp_path):
    v = write_version(tmp_path, small_model(), IDS, {})
    (v / "weights.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(ArtifactError):
        load_artifact(v)


def test_config_that_does_not_match_the_weights_is_refused(tmp_path):
    v = write_version(tmp_path, small_model(), IDS, {})
    manifest = json.loads((v / "manifest.json").read_text())
    manifest["model_config"]["n_layers"] = 2
    (v / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not match its config"):
        load_artifact(v)


def test_item_vocabulary_of_the_wrong_size_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="rows"):
        write_version(tmp_path, small_model(), IDS[:-1], {})


def test_unknown_format_version_and_missing_paths_are_explained(tmp_path):
    v = write_version(tmp_path, small_model(), IDS, {})
    manifest = json.loads((v / "manifest.json").read_text())
    manifest["format_version"] = 99
    (v / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format_version"):
        load_artifact(v)
    with pytest.raises(ArtifactError, match="does not exist"):
        resolve(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="CURRENT"):
        resolve(tmp_path / "empty")


def test_current_pointing_at_a_missing_version_is_refused(tmp_path):
    write_version(tmp_path, small_model(), IDS, {})
    (tmp_path / "CURRENT").write_text("v0042\n")
    with pytest.raises(ArtifactError, match="v0042"):
        resolve(tmp_path)
