import json

import pytest
import torch

from elcrec.model.artifact import ArtifactError, ManifestInfo, Store, load_artifact, resolve
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec

IDS = [None] + [str(i) for i in range(1, 21)] + [None]


def small_model(seed: int = 0) -> ELCRec:
    torch.manual_seed(seed)
    return ELCRec(ModelConfig(n_items=20, n_layers=1, n_intents=3, d=8, max_len=5))


def test_write_then_load_round_trips_and_moves_current(tmp_path):
    store = tmp_path / "store"
    m1, m2 = small_model(0), small_model(1)
    v1 = Store(store).write_version(m1, IDS, ManifestInfo(metrics={"x": 1}))
    v2 = Store(store).write_version(m2, IDS, ManifestInfo())
    assert [v1.name, v2.name] == ["v0001", "v0002"] == Store(store).versions()
    assert Store(store).current() == "v0002"
    art = load_artifact(store)
    assert art.version == "v0002" and art.item_ids == IDS
    assert art.manifest.parent == "v0001"
    for k, v in m2.state_dict().items():
        assert torch.equal(art.model.state_dict()[k], v)
    assert load_artifact(v1).info.metrics == {"x": 1}
    assert not any(p.name.startswith(".tmp") for p in store.iterdir())


def test_an_intent_calibration_round_trips_and_a_wrong_one_is_refused(tmp_path):
    from elcrec.model.artifact import INTENTS, sha256_file
    from elcrec.model.intents import IntentSpace

    m = small_model()
    bias, profiles = torch.tensor([0.1, -0.2, 0.0]), torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    v = Store(tmp_path).write_version(m, IDS, ManifestInfo(), intents=IntentSpace(m.intent_centers.detach(), bias, profiles))
    art = load_artifact(v)
    assert torch.equal(art.intents.bias, bias) and torch.equal(art.intents.profiles, profiles)
    assert art.info.intent_calibration == {"file": INTENTS, "holds": ["bias", "profiles"]}
    # without one: the centers as they are
    plain = load_artifact(Store(tmp_path).write_version(m, IDS, ManifestInfo()))
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
        Store(tmp_path).write_version(m, IDS, ManifestInfo(), intents=IntentSpace(torch.zeros(4, 8), torch.zeros(4)))


def test_corrupt_weights_are_refused_with_a_clear_message(tmp_path):
    v = Store(tmp_path).write_version(small_model(), IDS, ManifestInfo())
    data = bytearray((v / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (v / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupt"):
        load_artifact(v)


def test_truncated_weights_are_refused(tmp_path):
    v = Store(tmp_path).write_version(small_model(), IDS, ManifestInfo())
    (v / "weights.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(ArtifactError):
        load_artifact(v)


def test_config_that_does_not_match_the_weights_is_refused(tmp_path):
    v = Store(tmp_path).write_version(small_model(), IDS, ManifestInfo())
    manifest = json.loads((v / "manifest.json").read_text())
    manifest["model_config"]["n_layers"] = 2
    (v / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not match its config"):
        load_artifact(v)


def test_item_vocabulary_of_the_wrong_size_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="rows"):
        Store(tmp_path).write_version(small_model(), IDS[:-1], ManifestInfo())


def test_unknown_format_version_and_missing_paths_are_explained(tmp_path):
    v = Store(tmp_path).write_version(small_model(), IDS, ManifestInfo())
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
    Store(tmp_path).write_version(small_model(), IDS, ManifestInfo())
    (tmp_path / "CURRENT").write_text("v0042\n")
    with pytest.raises(ArtifactError, match="v0042"):
        resolve(tmp_path)


def test_a_version_copied_in_keeps_its_name_where_free_and_is_not_current(tmp_path):
    source = Store(tmp_path / "a")
    v = source.write_version(small_model(), IDS, ManifestInfo(metrics={"x": 1}))
    target = Store(tmp_path / "b")
    assert target.copy_in(v) == "v0001" and target.current() is None
    assert target.copy_in(v) == "v0002"  # its name is taken: the next number
    target.set_current("v0002")
    assert target.load().info.metrics == {"x": 1} and target.manifest("v0001").version == "v0001"
    assert not [p for p in target.root.iterdir() if p.name.startswith(".")]
    with pytest.raises(ArtifactError, match="manifest.json is unreadable"):
        target.copy_in(tmp_path)  # not a version


def test_a_version_is_removed_unless_current(tmp_path):
    store = Store(tmp_path)
    store.write_version(small_model(), IDS, ManifestInfo())
    store.write_version(small_model(1), IDS, ManifestInfo())
    with pytest.raises(ArtifactError, match="v0002 is CURRENT"):
        store.remove("v0002")
    with pytest.raises(ArtifactError, match="no version 'v0009'"):
        store.remove("v0009")
    store.write_merged_data("v0001", "u1 1 2 3\n", {"watermark": "1-0"})
    store.remove("v0001")
    assert store.versions() == ["v0002"] and store.current() == "v0002" and store.merged_versions() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "data", "v0002"]
    assert store.write_version(small_model(2), IDS, ManifestInfo()).name == "v0003"


def test_the_retrain_lock_is_held_by_one_process_at_a_time(tmp_path):
    import subprocess
    import sys

    from elcrec.model.artifact import StoreBusy

    with subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; fh = open(sys.argv[1], 'a'); "
         "fcntl.flock(fh, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(tmp_path / Store.LOCK_FILE)],
        stdout=subprocess.PIPE, text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            with pytest.raises(StoreBusy, match="another elcrec retrain"), Store(tmp_path).lock():
                pass
        finally:
            holder.kill()
    with Store(tmp_path).lock():  # released with its holder
        pass


def test_merged_data_is_listed_only_where_both_files_are_there(tmp_path):
    store = Store(tmp_path)
    assert store.merged_versions() == []
    store.write_merged_data("v0002", "u1 1 2 3\n", {"watermark": "1-0"})
    store.write_merged_data("v0010", "u1 1 2 3\n", {"watermark": "2-0"})
    store.merged_data("v0003")[1].write_text("{}")  # a sidecar without its interactions
    assert store.merged_versions() == ["v0002", "v0010"]
    assert json.loads(store.merged_data("v0010")[1].read_text()) == {"version": "v0010", "watermark": "2-0"}
