"""`elcrec bootstrap`: a store that can serve from the first minute (the compose init service, `make run`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from elcrec.model.artifact import Store, load_artifact
from elcrec.training.bootstrap import BootstrapError, bootstrap


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bootstrap")
    store, data = root / "store", root / "data" / "base.txt"
    outcome = bootstrap(store, data, seed=root / "no-seed", log=lambda _: None)
    assert (outcome.action, outcome.version, outcome.data) == ("demo", "v0001", data)
    return store, data


def test_an_empty_store_gets_a_demo_model_and_its_base_data(demo_store: tuple[Path, Path]) -> None:
    store, data = demo_store
    artifact = load_artifact(store / "v0001")
    assert artifact.info.origin["demo"] is True
    users = data.read_text().splitlines()
    items = {i for line in users for i in line.split()[1:]}
    assert len(users) == 2000 and {i for i in artifact.item_ids if i is not None} == items
    assert not (store / "runs").exists(), "the demo run's checkpoint stays out of the store"


def test_a_store_with_a_current_version_is_left_alone(demo_store: tuple[Path, Path], tmp_path: Path) -> None:
    store, data = demo_store
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    outcome = bootstrap(store, data, seed=None, log=lambda _: None)
    assert (outcome.action, outcome.version) == ("kept", "v0001")
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before


@pytest.mark.parametrize("form", ["store", "version"])
def test_a_seed_model_is_served_instead_of_the_demo(demo_store: tuple[Path, Path], tmp_path: Path, form: str) -> None:
    store, data = demo_store
    seed = tmp_path / "seed"
    shutil.copytree(store if form == "store" else store / "v0001", seed / "model")
    shutil.copyfile(data, seed / "base.txt")
    target, target_data = tmp_path / "artifacts", tmp_path / "data" / "base.txt"
    outcome = bootstrap(target, target_data, seed=seed, log=lambda _: None)
    assert (outcome.action, outcome.version) == ("seeded", "v0001")
    assert Store(target).current() == "v0001" and target_data.read_text() == data.read_text()
    load_artifact(target / "v0001", verify=True)


def test_a_corrupt_seed_fails_with_its_path_and_publishes_nothing(demo_store: tuple[Path, Path], tmp_path: Path) -> None:
    store, _ = demo_store
    seed = tmp_path / "seed"
    shutil.copytree(store / "v0001", seed / "model")
    weights = next(p for p in (seed / "model").iterdir() if p.suffix == ".safetensors")
    weights.write_bytes(weights.read_bytes()[:-16] + b"\0" * 16)
    target = tmp_path / "artifacts"
    with pytest.raises(BootstrapError, match="seed model"):
        bootstrap(target, None, seed=seed, log=lambda _: None)
    assert Store(target).current() is None
