"""Retraining keeps the live version's catalog, takes a newer one when given, and serves events for items the
catalog does not know (against a real redis-server)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from elcrec.cli import app
from elcrec.model.artifact import CATALOG, Store, load_artifact
from elcrec.model.catalog import read_catalog
from elcrec.training.export import publish_catalog
from elcrec.training.retrain import RetrainOptions, retrain
from tests.support.retrain import add_events


def write_catalog(path: Path, title: str) -> Path:
    path.write_text("id,title,genre\n" + "".join(f"{i},{title} {i},g{i % 3}\n" for i in range(1, 61)))
    return path


def events(tag: str) -> list[tuple[str, list[str]]]:
    """New users with items the catalog does not know (tag-sku*) beside known ones."""
    return [(f"{tag}-u{i}", [f"{tag}-sku{i % 2}", str(1 + i), str(10 + i), f"{tag}-sku{(i + 1) % 2}"]) for i in range(4)]


def test_retraining_carries_the_catalog_and_takes_a_newer_one(
    store: Path, base: Path, redis_url: str, tmp_path: Path
) -> None:
    publish_catalog(store, read_catalog(write_catalog(tmp_path / "items.csv", "Old")))
    live = load_artifact(store)
    assert live.version == "v0002" and live.read_catalog() is not None

    add_events(redis_url, events("a"))
    s = retrain(RetrainOptions(store=store, base_data=base, redis_url=redis_url, gate_tolerance=1.0,
                               train_overrides={"epochs": 1}), log=lambda _: None)
    assert (s.status, s.published) == ("published", "v0003")
    carried = load_artifact(store)
    assert carried.manifest.files[CATALOG] == live.manifest.files[CATALOG]
    assert carried.manifest.catalog is not None and carried.manifest.catalog["known_items"] == 60  # the new items (a-sku0, a-sku1) are not in it
    assert {"a-sku0", "a-sku1"} <= set(carried.item_ids[1:-1])

    newer = write_catalog(tmp_path / "newer.csv", "New")
    with newer.open("a") as fh:
        fh.write("b-sku0,Brand new,g9\n")
    add_events(redis_url, events("b"))
    argv = ["retrain", "--artifacts", str(store), "--data", str(base), "--redis", redis_url, "--device", "cpu",
            "--gate-tolerance", "1", "--epochs", "1", "--catalog", str(newer)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.stderr
    latest = Store(store).manifest("v0004").catalog
    assert latest is not None and latest["source"] == "newer.csv" and latest["known_items"] == 61
    catalog = load_artifact(store).read_catalog()
    assert catalog is not None and catalog.titles[:1] == ("New 1",) and "b-sku0" in catalog.ids


def test_a_malformed_catalog_stops_the_retrain_before_any_work(store: Path, base: Path, redis_url: str,
                                                               tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,title\n1,One\n,Two\n")
    add_events(redis_url, events("a"))
    argv = ["retrain", "--artifacts", str(store), "--data", str(base), "--redis", redis_url, "--device", "cpu",
            "--catalog", str(bad)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and f"{bad} row 2 (line 3)" in result.stderr
    assert (store / "CURRENT").read_text().strip() == "v0001"
