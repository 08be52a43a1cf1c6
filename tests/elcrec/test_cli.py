"""The command line: train and evaluate, bad input, downloads, presets and their settings, intents fit, and the
intents a run ends with."""

import functools
import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import pytest
import torch

from elcrec.model.artifact import load_artifact
from elcrec.model.catalog import item_categories
from elcrec.model.intent_labels import version_labels
from elcrec.training import download as dl
from elcrec.training.config import NO_PRESET, PRESETS, SETTLE_EPOCHS
from elcrec.training.intent_count import RULE, intents_for
from elcrec.training.intent_health import IntentHealth
from elcrec.training.intent_settle import better_settled
from tests.support.cli import run_cli
from tests.support.shared_data import DATA, need


def test_train_exports_a_version_and_evaluate_reads_it(tmp_path):
    data = tmp_path / "syn.txt"
    assert run_cli("data", "synthetic", "--out", str(data), "--users", "300", "--items", "60", "--intents", "3").returncode == 0
    store = tmp_path / "store"
    trained = run_cli("train", "--data", str(data), "--out", str(store), "--epochs", "2", "--layers", "1",
                      "--intents", "3", "--hidden", "16", "--no-progress")
    assert trained.returncode == 0, trained.stderr
    assert "epoch   2" in trained.stdout and "exported" in trained.stdout
    manifest = json.loads((store / "v0001" / "manifest.json").read_text())
    assert manifest["model_config"]["n_intents"] == 3 and manifest["pooling"] == "real"
    assert set(manifest["metrics"]) == {"valid", "test"} and "strict" in manifest["metrics"]["test"]
    assert len(manifest["intent_shares"]) == 3 and manifest["popular_items"]
    assert manifest["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    run_dirs = list((store / "runs").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "log.jsonl").read_text().count("\n") == 2
    # the same command again resumes the finished run instead of training from scratch
    again = run_cli("train", "--data", str(data), "--out", str(store), "--epochs", "2", "--layers", "1",
                    "--intents", "3", "--hidden", "16", "--no-progress")
    assert "resumed" in again.stdout and "epoch   1" not in again.stdout
    # more epochs: the same run goes on (the run directory is named without the stopping rules)
    longer = run_cli("train", "--data", str(data), "--out", str(store), "--epochs", "3", "--layers", "1",
                     "--intents", "3", "--hidden", "16", "--no-progress")
    assert "resumed" in longer.stdout and "epoch   3" in longer.stdout and "epoch   2" not in longer.stdout
    assert list((store / "runs").iterdir()) == run_dirs
    evaluated = run_cli("evaluate", str(store / "v0001"), "--data", str(data), "--split", "valid", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    payload = json.loads(evaluated.stdout)
    metrics = payload["metrics"]
    assert metrics["NDCG@20"] == pytest.approx(manifest["metrics"]["valid"]["reference"]["NDCG@20"], abs=1e-9)
    assert payload["users"] > 0 and set(payload["standard_errors"]) == set(metrics)
    assert all(0.0 <= v < 0.5 for v in payload["standard_errors"].values())
    text = run_cli("evaluate", str(store / "v0001"), "--data", str(data), "--split", "valid")
    assert text.returncode == 0 and f"NDCG@20 {metrics['NDCG@20']:.4f} ± " in text.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("u1 1 2 three\n", "line 1: item id 'three' is not an integer")],
)
def test_bad_data_gives_a_message_not_a_traceback(tmp_path, content, message):
    f = tmp_path / "bad.txt"
    f.write_text(content)
    result = run_cli("train", "--data", str(f), "--out", str(tmp_path / "s"), "--epochs", "1")
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_evaluate_refuses_a_store_without_versions(tmp_path):
    f = tmp_path / "d.txt"
    f.write_text("u 1 2 3 4 5\n")
    result = run_cli("evaluate", str(tmp_path), "--data", str(f))
    assert result.returncode == 2 and "CURRENT" in result.stderr and "Traceback" not in result.stderr


def test_presets_cannot_take_an_unknown_name(tmp_path):
    result = run_cli("train", "--data", "x", "--out", str(tmp_path), "--preset", "Movies")
    assert result.returncode == 2 and "Movies" in result.stderr


@pytest.fixture
def mirror(tmp_path):
    root = need(DATA)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_fetches_and_verifies_a_benchmark_file(tmp_path, mirror):
    result = run_cli("data", "download", "Toys_and_Games", "--out", str(tmp_path), "--base-url", mirror)
    assert result.returncode == 0, result.stderr
    got = (tmp_path / "Toys_and_Games.txt").read_bytes()
    assert hashlib.sha256(got).hexdigest() == dl.SHA256["Toys_and_Games"]


def test_download_refuses_a_file_with_the_wrong_checksum(tmp_path, mirror, monkeypatch):
    monkeypatch.setitem(dl.SHA256, "Beauty", "0" * 64)
    with pytest.raises(dl.DownloadError, match="does not match"):
        dl.download("Beauty", tmp_path, mirror)
    assert not list(Path(tmp_path).iterdir())  # nothing half-written is left


def test_download_reports_an_unreachable_mirror(tmp_path):
    result = run_cli("data", "download", "Yelp", "--out", str(tmp_path), "--base-url", "http://127.0.0.1:9")
    assert result.returncode == 2 and "could not download" in result.stderr


def _synthetic(tmp_path):
    data = tmp_path / "syn.txt"
    assert run_cli("data", "synthetic", "--out", str(data), "--users", "200", "--items", "40", "--intents", "3").returncode == 0
    return data


SMALL = ["--epochs", "1", "--layers", "1", "--intents", "3", "--hidden", "16", "--no-progress"]


def _origin(store):
    manifest = json.loads((store / "v0001" / "manifest.json").read_text())
    return manifest["origin"], manifest["model_config"]


def test_the_improved_preset_sets_the_best_ranking_settings_and_explicit_flags_still_win(tmp_path):
    data = _synthetic(tmp_path)
    done = run_cli("train", "--data", str(data), "--out", str(tmp_path / "a"), "--preset", "Beauty", "--improved", *SMALL)
    assert done.returncode == 0, done.stderr
    origin, model = _origin(tmp_path / "a")
    assert origin["improved"] is True and origin["improved_intents"] is False and origin["preset"] == "Beauty"
    assert origin["device"] == "cpu"  # where it trained, recorded beside the results
    done_run = next((tmp_path / "a" / "runs").glob("*/result.json"))
    assert json.loads(done_run.read_text())["device"] == "cpu"
    train = origin["train_config"]
    assert train["rec_loss"] == "softmax" and train["samples"] == "prefixes" and train["patience"] == 10
    assert model["mix_alpha"] == 0.7  # the frequency filter: IMPROVED also sets model settings
    assert train["prototype"] == "shift"  # the paper's Beauty preset underneath
    assert train["trade_off"] == 1.0  # ... with its ELCM weight changed by IMPROVED
    assert train["ema"] == 0.999  # validated and exported: the moving average of the weights
    assert train["label_smoothing"] == 0.1  # the softmax's targets smoothed (Beauty)
    assert train["intent_loss"] == "balanced" and train["intent_settle"] == SETTLE_EPOCHS  # intents that hold
    done = run_cli("train", "--data", str(data), "--out", str(tmp_path / "b"), "--preset", "Beauty", "--improved",
                   "--mix-alpha", "0.2", "--rec-loss", "sampled", "--negatives", "64", *SMALL)
    assert done.returncode == 0, done.stderr
    origin, model = _origin(tmp_path / "b")
    assert model["mix_alpha"] == 0.2 and origin["train_config"]["rec_loss"] == "sampled"
    assert origin["train_config"]["n_negatives"] == 64
    assert origin["train_config"].get("label_smoothing", 0.0) == 0.0  # the preset smooths only its full softmax


def test_the_improved_intents_preset_keeps_sequence_samples_and_lowers_the_elcm_weight(tmp_path):
    data = _synthetic(tmp_path)
    done = run_cli("train", "--data", str(data), "--out", str(tmp_path / "a"), "--preset", "Beauty", "--improved-intents",
                   *SMALL)
    assert done.returncode == 0, done.stderr
    origin, model = _origin(tmp_path / "a")
    assert origin["improved_intents"] is True and origin["improved"] is False
    train = origin["train_config"]
    assert train["rec_loss"] == "sampled" and train["n_negatives"] == 1024 and train["trade_off"] == 1.0
    assert train.get("samples", "sequence") == "sequence" and model.get("mix_alpha", 0.0) == 0.0


def test_improved_without_a_preset_or_with_both_variants_is_refused_with_a_message(tmp_path):
    for flags, message in ((["--improved"], "--improved needs --preset"),
                           (["--improved-intents"], "--improved-intents needs --preset"),
                           (["--preset", "Beauty", "--improved", "--improved-intents"], "pick one")):
        result = run_cli("train", "--data", "x", "--out", str(tmp_path), *flags)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_the_improved_preset_with_sequence_samples_names_the_conflict(tmp_path):
    data = _synthetic(tmp_path)
    result = run_cli("train", "--data", str(data), "--out", str(tmp_path / "a"), "--preset", "Beauty", "--improved",
                     "--samples", "sequence", *SMALL)
    assert result.returncode == 2 and "needs samples 'prefixes'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a" / "v0001").exists()


def test_the_frequency_filter_option_trains_exports_and_evaluates(tmp_path):
    data = tmp_path / "syn.txt"
    assert run_cli("data", "synthetic", "--out", str(data), "--users", "200", "--items", "40", "--intents", "3").returncode == 0
    small = ["--epochs", "1", "--layers", "1", "--intents", "3", "--hidden", "16", "--no-progress", "--mix-alpha", "0.7"]
    refused = run_cli("train", "--data", str(data), "--out", str(tmp_path / "a"), *small)
    assert refused.returncode == 2 and "needs samples 'prefixes'" in refused.stderr and "Traceback" not in refused.stderr
    done = run_cli("train", "--data", str(data), "--out", str(tmp_path / "a"), *small, "--samples", "prefixes",
                   "--freq-bins", "2")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "a" / "v0001" / "manifest.json").read_text())
    assert manifest["model_config"]["mix_alpha"] == 0.7 and manifest["model_config"]["freq_bins"] == 2
    evaluated = run_cli("evaluate", str(tmp_path / "a" / "v0001"), "--data", str(data), "--split", "test", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["metrics"]["NDCG@20"] == pytest.approx(
        manifest["metrics"]["test"]["reference"]["NDCG@20"], abs=1e-9)


def test_the_improved_settings_per_data_set():
    from elcrec.training.config import preset_settings

    for name in ("Beauty", "Sports_and_Outdoors", "Toys_and_Games", "Yelp"):  # the filter and the moving average:
        assert preset_settings(name, improved=True)[1]["ema"] == 0.999  # measured better on validation on each
        assert preset_settings(name, improved=True)[0]["mix_alpha"] == 0.7
    assert preset_settings("Beauty", improved=True)[0]["d"] == 128  # hidden size 128: measured on Beauty only
    assert preset_settings("Beauty", improved=True)[1]["label_smoothing"] == 0.1  # measured on Beauty only
    assert "label_smoothing" not in preset_settings("Toys_and_Games", improved=True)[1]
    assert "d" not in preset_settings("Toys_and_Games", improved=True)[0]
    for name, intent_loss in (("Beauty", "balanced"), ("Toys_and_Games", "balanced"), ("Sports_and_Outdoors", None),
                              ("Yelp", "balanced")):  # intents learned balanced where measured (docs/research/INTENTS-NOTES.md)
        assert preset_settings(name, improved=True)[1].get("intent_loss") == intent_loss
    assert preset_settings("Yelp", improved_intents=True) == preset_settings("Yelp")  # the sampled softmax overfits there
    assert "ema" not in preset_settings("Toys_and_Games")[1]  # the paper's preset stays the paper's


# A setting that belongs to another one: refused without it (alone, or with another choice where it is the default
# without a preset) with a message that names it, trained and recorded with it.
@pytest.mark.parametrize(("setting", "value", "without", "needs", "refusal"), [
    ("label-smoothing", "0.1", (), ("--rec-loss", "softmax"), "label_smoothing needs rec_loss 'softmax'"),
    ("intent-queue", "64", ("--intent-loss", "elcm"), ("--intent-loss", "balanced"),
     "intent_queue is a setting of intent_loss 'balanced'"),
    ("intent-settle", "5", ("--intent-loss", "elcm"), (), "intent_settle is a setting of intent_loss 'balanced'"),
])
def test_a_setting_of_another_is_refused_alone_and_recorded_with_it(tmp_path, setting, value, without, needs, refusal):
    data = _synthetic(tmp_path)
    refused = run_cli("train", "--data", str(data), "--out", str(tmp_path / "a"), *SMALL, *without, f"--{setting}",
                      value)
    assert refused.returncode == 2 and refusal in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "a" / "v0001").exists()
    done = run_cli("train", "--data", str(data), "--out", str(tmp_path / "a"), *SMALL, *needs, f"--{setting}", value)
    assert done.returncode == 0, done.stderr
    origin, _ = _origin(tmp_path / "a")
    assert origin["train_config"][setting.replace("-", "_")] == float(value)


def test_label_smoothing_out_of_range_is_refused(tmp_path):
    data = _synthetic(tmp_path)
    out_of_range = run_cli("train", "--data", str(data), "--out", str(tmp_path / "a"), *SMALL, "--rec-loss", "softmax",
                           "--label-smoothing", "1.5")
    assert out_of_range.returncode == 2 and "must be in [0, 1)" in out_of_range.stderr


def test_intents_fit_publishes_fitted_intents_and_evaluate_reports_intent_health(tmp_path):
    data = tmp_path / "syn.txt"
    assert run_cli("data", "synthetic", "--out", str(data), "--users", "400", "--items", "80", "--intents", "4").returncode == 0
    store = tmp_path / "store"
    trained = run_cli("train", "--data", str(data), "--out", str(store), "--epochs", "2", "--layers", "1", "--intents", "6",
                      "--hidden", "16", "--no-progress", "--intent-loss", "balanced")
    assert trained.returncode == 0, trained.stderr
    settle = NO_PRESET[1]["intent_settle"]  # without a preset, the balanced loss settles as NO_PRESET says
    assert "intents used" in trained.stdout and f"intent centers settled: {settle} epochs" in trained.stdout
    first = json.loads((store / "v0001" / "manifest.json").read_text())
    assert first["origin"]["train_config"]["intent_loss"] == "balanced"
    assert first["origin"]["train_config"]["intent_settle"] == settle  # settled unless told otherwise
    health = first["intent_health"]
    assert health["intents"] == 6 and 1 <= health["used"] <= 6 and 1.0 <= health["effective"] <= 6.0
    # centers trained balanced: the version stores the balancing bias and the profiles, fitted on the training users
    assert first["intent_calibration"]["balancing_bias"] is True and first["intent_calibration"]["users"] == 400
    assert first["intent_calibration"]["holds"] == ["bias", "profiles"] and "intents.safetensors" in first["files"]
    first_eval = json.loads(run_cli("evaluate", str(store / "v0001"), "--data", str(data), "--json").stdout)
    assert first_eval["intents"] == health  # evaluate reads the intents as the manifest does
    # calibrated again (as for a version exported before calibrations existed): the same model and figures
    again = run_cli("intents", "calibrate", str(store), "--data", str(data))
    assert again.returncode == 0 and "v0002" in again.stdout, again.stderr
    recal = json.loads((store / "v0002" / "manifest.json").read_text())
    assert recal["origin"]["kind"] == "calibrated" and recal["origin"]["parent"] == "v0001"
    assert recal["intent_calibration"]["balancing_bias"] is True and recal["metrics"] == first["metrics"]
    assert recal["intent_health"] == health and recal["files"]["weights.safetensors"] == first["files"]["weights.safetensors"]
    # settled further (as for a version trained before training settled): new centers, the same encoder and figures
    settled = run_cli("intents", "calibrate", str(store), "--data", str(data), "--settle", "5")
    assert settled.returncode == 0 and "v0003 with its intents settled and calibrated" in settled.stdout, settled.stderr
    resettled = json.loads((store / "v0003" / "manifest.json").read_text())
    how = resettled["origin"]["settled"]
    # at the temperature the version was trained to settle at (NO_PRESET's)
    assert (how["epochs"], how["temperature"], how["seed"]) == (5, NO_PRESET[1]["intent_settle_temperature"], 1)
    assert how["kept"] in ("settled", "trained")
    kept_settled = better_settled(*(IntentHealth(**how[k]) for k in ("valid_before", "valid_after")))
    assert how["kept"] == ("settled" if kept_settled else "trained")
    assert resettled["metrics"] == first["metrics"] and resettled["intent_calibration"]["balancing_bias"] is True
    moved = resettled["files"]["weights.safetensors"] != first["files"]["weights.safetensors"]
    assert moved == kept_settled  # the weights change only by the centers, and only where settling was kept
    alone = run_cli("intents", "calibrate", str(store), "--data", str(data), "--settle-temperature", "0.2")
    assert alone.returncode == 2 and "needs a number of settling epochs (--settle)" in alone.stderr
    assert "Traceback" not in alone.stderr and not (store / "v0004").exists()
    fitted = run_cli("intents", "fit", str(store), "--data", str(data), "--k", "4")
    assert fitted.returncode == 0, fitted.stderr
    assert "v0004" in fitted.stdout and (store / "CURRENT").read_text().strip() == "v0004"
    second = json.loads((store / "v0004" / "manifest.json").read_text())
    assert second["origin"]["kind"] == "intents-fit" and second["origin"]["parent"] == "v0003"
    assert second["model_config"]["n_intents"] == 4 and len(second["intent_shares"]) == 4
    assert second["metrics"] == first["metrics"]  # the encoder is unchanged
    # k-means centers get profiles, not the bias the balanced loss trains for
    assert second["intent_calibration"]["balancing_bias"] is False and second["intent_calibration"]["holds"] == ["profiles"]
    evaluated = run_cli("evaluate", str(store), "--data", str(data), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    payload = json.loads(evaluated.stdout)
    assert payload["version"] == "v0004" and payload["intents"]["intents"] == 4
    assert payload["metrics"]["NDCG@20"] == pytest.approx(first["metrics"]["test"]["reference"]["NDCG@20"], abs=1e-6)
    assert set(payload["intents"]) == {"users", "intents", "used", "largest", "effective", "overlap", "lift"}
    # bad input: a message, not a traceback
    too_many = run_cli("intents", "fit", str(store), "--data", str(data), "--k", "100000")
    assert too_many.returncode == 2 and "cannot fit 100000 intents" in too_many.stderr and "Traceback" not in too_many.stderr
    empty = run_cli("intents", "fit", str(tmp_path / "nothing"), "--data", str(data))
    assert empty.returncode == 2 and "Traceback" not in empty.stderr
    not_balanced = run_cli("intents", "calibrate", str(store), "--data", str(data), "--settle", "5")  # k-means centers
    assert not_balanced.returncode == 2 and "v0004 was not trained with it" in not_balanced.stderr
    assert "Traceback" not in not_balanced.stderr and not (store / "v0005").exists()


HEALTH_LINE = re.compile(r"^intents \((\d+) test users\): (\d+) of (\d+) used, effective ([\d.]+), largest (\d+)%, "
                         r"overlap ([\d.]+|-), lift@100 ([\d.]+|-)$", re.MULTILINE)


def _planted(tmp_path: Path, users: int = 600) -> Path:
    """A log with 8 planted intents, and beside it (items.csv) its catalog: genre planted, shelf random."""
    data = tmp_path / "planted.txt"
    made = run_cli("data", "synthetic", "--out", str(data), "--users", str(users), "--items", "400", "--intents", "8",
                   "--catalog", str(tmp_path / "items.csv"))
    assert made.returncode == 0, made.stderr
    return data


def test_train_without_a_preset_learns_balanced_intents_their_number_from_the_data(tmp_path):
    data, store = _planted(tmp_path), tmp_path / "store"
    trained = run_cli("train", "--data", str(data), "--out", str(store), "--epochs", "15", "--layers", "1",
                      "--hidden", "32", "--no-progress", "--catalog", str(tmp_path / "items.csv"))
    assert trained.returncode == 0, trained.stderr
    k = intents_for(600)
    manifest = json.loads((store / "v0001" / "manifest.json").read_text())
    assert manifest["model_config"]["n_intents"] == k
    assert manifest["origin"]["train_config"]["intent_loss"] == "balanced"
    assert manifest["origin"]["train_config"]["intent_settle"] == NO_PRESET[1]["intent_settle"]
    assert manifest["origin"]["train_config"]["intent_settle_temperature"] == NO_PRESET[1]["intent_settle_temperature"]
    assert manifest["origin"]["train_config"]["trade_off"] == NO_PRESET[1]["trade_off"]
    assert manifest["origin"]["intent_count"] == {"k": k, "chosen_by": "rule", "users": 600, "rule": RULE}
    assert f"K = {k} intents from the data: 600 users" in trained.stdout
    assert manifest["intent_health"]["effective"] >= k / 2
    # training ends with the health of the exported intents, as the manifest records them; no warning
    last = trained.stdout.strip().splitlines()[-1]
    got = HEALTH_LINE.fullmatch(last)
    assert got is not None, last
    assert int(got[3]) == k and float(got[4]) == pytest.approx(manifest["intent_health"]["effective"], abs=0.05)
    assert "warning" not in trained.stderr
    # the labels name the planted genres, never the random shelves
    art = load_artifact(store)
    catalog = art.read_catalog()
    assert catalog is not None
    labels = version_labels(art.intents, torch.tensor(art.info.intent_mean_state),
                            art.model.item_table().detach().float()[1:-1], item_categories(catalog, art.item_ids))
    named = [label.categories[0] for label in labels if label.categories]
    assert len(named) >= k / 2
    assert {c.field for c in named} == {"genre"}  # each named intent's first category is its planted genre


def test_elcm_when_asked_for_and_a_collapse_says_what_to_do(tmp_path):
    data, store = _planted(tmp_path), tmp_path / "store"
    # ELCM with many intents and a large weight collapses within a few epochs on this log
    trained = run_cli("train", "--data", str(data), "--out", str(store), "--epochs", "12", "--layers", "1",
                      "--hidden", "16", "--no-progress", "--intent-loss", "elcm", "--intents", "64",
                      "--trade-off", "10")
    assert trained.returncode == 0, trained.stderr
    manifest = json.loads((store / "v0001" / "manifest.json").read_text())
    assert manifest["origin"]["train_config"].get("intent_loss", "elcm") == "elcm"
    assert "intent_settle" not in manifest["origin"]["train_config"]
    assert manifest["origin"]["train_config"]["trade_off"] == 10.0
    assert manifest["origin"]["intent_count"] == {"k": 64, "chosen_by": "--intents", "users": 600}
    health = manifest["intent_health"]
    assert health["effective"] < 6.4, health  # below K / 10: collapsed
    assert HEALTH_LINE.search(trained.stdout)
    assert "warning: the intents collapsed: effective number" in trained.stderr
    assert "--intent-loss balanced" in trained.stderr
    assert f"elcrec intents fit {store} --data {data} --k {intents_for(600)}" in trained.stderr


def test_a_preset_keeps_the_papers_elcm_and_its_number_of_intents(tmp_path):
    data, store = _planted(tmp_path), tmp_path / "store"
    trained = run_cli("train", "--data", str(data), "--out", str(store), "--preset", "Beauty", "--epochs", "1",
                      "--hidden", "16", "--no-progress")
    assert trained.returncode == 0, trained.stderr
    manifest = json.loads((store / "v0001" / "manifest.json").read_text())
    assert manifest["origin"]["train_config"].get("intent_loss", "elcm") == "elcm"
    assert manifest["model_config"]["n_intents"] == PRESETS["Beauty"][0]["n_intents"]
    assert manifest["origin"]["intent_count"]["chosen_by"] == "preset"
