"""`elcrec data import` on the command line: a log becomes a data set (errors named, no traceback), and a model
trained on it serves and evaluates in the log's own ids."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from elcrec.cli import app
from elcrec.training.data import read_interactions
from elcrec.training.importer import ImportSpec, import_logs
from elcrec.training.synthetic import SyntheticSpec, generate
from tests.training.test_importer import ROWS, write_csv


def test_the_cli_imports_and_reports_errors_without_a_traceback(tmp_path):
    log = write_csv(tmp_path / "log.csv", ROWS)
    runner = CliRunner()
    args = ["data", "import", str(log), "--out", str(tmp_path / "ds"), "--user", "user", "--item", "item",
            "--time", "ts", "--rating", "rating", "--min-rating", "2", "--no-progress"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "read 5 rows" in ok.output and "dropped by filter (rating >= 2): 1" in ok.output
    assert "2 users, 3 items, 4 interactions" in ok.output and "sequence length p50 2, p90 2, p99 2, max 2" in ok.output
    bad = runner.invoke(app, [*args[:4], str(tmp_path / "ds2"), "--user", "who", "--item", "item", "--no-progress"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "error: " in bad.output and "no column --user 'who'" in bad.output and not (tmp_path / "ds2").exists()
    (tmp_path / "cat.csv").write_text("id,title\na,A\na,again\n")
    bad_catalog = runner.invoke(app, [*args[:4], str(tmp_path / "ds3"), *args[5:], "--catalog", str(tmp_path / "cat.csv")])
    assert bad_catalog.exit_code == 2 and "Traceback" not in bad_catalog.output
    assert "cat.csv row 2" in bad_catalog.output and "'a' again" in bad_catalog.output
    assert not (tmp_path / "ds3").exists()
    missing = runner.invoke(app, ["data", "import", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x"),
                                  "--user", "u", "--item", "i"])
    assert missing.exit_code == 2 and "nope.csv does not exist" in missing.output


def test_a_model_trained_on_an_imported_log_serves_its_external_ids(tmp_path):
    synthetic, _ = generate(SyntheticSpec(n_users=300, n_items=60, n_intents=3, seed=0))
    rows = [(f"user-{u}", f"sku-{i}", 1000 + k) for u in range(synthetic.n_users)
            for k, i in enumerate(synthetic.sequence(u).tolist())]
    log = write_csv(tmp_path / "log.csv", rows[::-1], header=["customer", "sku", "at"])  # time order, not file order
    runner = CliRunner()
    catalog = tmp_path / "items.csv"
    catalog.write_text("id,title,shelf\n" + "".join(f"sku-{i},Item {i},shelf {i % 3}\n" for i in range(1, 61)))
    imported = runner.invoke(app, ["data", "import", str(log), "--out", str(tmp_path / "ds"), "--user", "customer",
                                   "--item", "sku", "--time", "at", "--kcore", "2", "--no-progress",
                                   "--catalog", str(catalog)])
    assert imported.exit_code == 0, imported.output
    assert "catalog items.csv: 60 items, fields shelf" in imported.output
    store = tmp_path / "store"
    trained = runner.invoke(app, ["train", "--data", str(tmp_path / "ds"), "--out", str(store), "--epochs", "2",
                                  "--layers", "1", "--intents", "3", "--hidden", "16", "--no-progress",
                                  "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    ids = json.loads((store / "v0001" / "items.json").read_text())["ids"]
    assert ids[1:-1] == (tmp_path / "ds" / "item_ids.txt").read_text().splitlines() and ids[1].startswith("sku-")
    manifest = json.loads((store / "v0001" / "manifest.json").read_text())
    assert manifest["data"]["sha256"] == read_interactions(tmp_path / "ds").fingerprint
    assert all(p.startswith("sku-") for p in manifest["popular_items"])
    # the catalog given at import went with the data set into the model
    assert manifest["catalog"]["source"] == "items.csv" and manifest["catalog"]["fields"] == ["shelf"]
    evaluated = runner.invoke(app, ["evaluate", str(store), "--data", str(tmp_path / "ds"), "--json", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["users"] == 300
    renamed = write_csv(tmp_path / "renamed.csv", [(u, "x" + i, t) for u, i, t in rows], header=["customer", "sku", "at"])
    import_logs([renamed], tmp_path / "other", ImportSpec(user="customer", item="sku", time="at", kcore=2))
    refused = runner.invoke(app, ["evaluate", str(store), "--data", str(tmp_path / "other"), "--device", "cpu"])
    assert refused.exit_code == 2 and "numbers its items otherwise than v0001" in refused.output
