import json

from elcrec.model.config import ModelConfig
from elcrec.training.config import TrainConfig
from elcrec.training.export import export_model
from elcrec.training.report import write_report
from elcrec.training.synthetic import SyntheticSpec, generate
from elcrec.training.trainer import Trainer


def test_report_draws_curves_user_map_and_intent_sizes(tmp_path):
    data, _ = generate(SyntheticSpec(n_users=300, n_items=60, n_intents=3, seed=1))
    store = tmp_path / "store"
    mcfg = ModelConfig(n_items=data.n_items, n_layers=1, n_intents=3, d=16, pooling="real")
    trainer = Trainer(mcfg, TrainConfig(epochs=2, batch_size=64, bucket=True), data, store / "runs" / "r", log=lambda _: None)
    model = trainer.fit()
    version = export_model(store, model, data, {"kind": "trained"})
    (store / "runs" / "r" / "result.json").write_text(json.dumps({"version": version.name}))
    result = write_report(store, data, tmp_path / "report", max_users=200)
    names = sorted(p.split("/")[-1] for p in result["files"])
    assert names == ["index.html", "intent_sizes.png", "training_curves.png", "user_map.png"]
    for name in names[1:]:
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "training_curves.png" in (tmp_path / "report" / "index.html").read_text()


def test_report_shows_labels_titles_and_coherence_where_the_version_has_a_catalog(tmp_path):
    from elcrec.model.catalog import Catalog
    from elcrec.training.synthetic import planted_item_intents

    spec = SyntheticSpec(n_users=300, n_items=60, n_intents=3, seed=1)
    data, _ = generate(spec)
    groups = planted_item_intents(spec)
    ids = tuple(str(i) for i in range(1, 61))
    catalog = Catalog(ids, tuple(f"Title <{i}>" for i in ids), ("genre",),
                      {"genre": tuple((f"genre {groups[i]}",) for i in range(1, 61))}, "items.csv")
    mcfg = ModelConfig(n_items=data.n_items, n_layers=1, n_intents=3, d=16, pooling="real")
    model = Trainer(mcfg, TrainConfig(epochs=2, batch_size=64, bucket=True), data, None, log=lambda _: None).fit()
    export_model(tmp_path / "store", model, data, {"kind": "trained"}, catalog=catalog)
    write_report(tmp_path / "store", data, tmp_path / "report", max_users=200)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<th>label (catalog)</th>" in page and "coherence (genre)" in page
    assert "Title &lt;" in page  # titles shown, escaped


def test_the_report_says_how_k_was_chosen_through_a_calibration_but_not_past_intents_fit():
    from elcrec.training.intent_count import choose_intents
    from elcrec.training.report import intent_count_note

    trained = {"kind": "trained", "intent_count": choose_intents(None, None, 943).to_dict()}
    note = intent_count_note(trained)
    assert note.startswith("<p>K = ") and "intents from the data: 943 users" in note
    assert intent_count_note({"kind": "calibrated", "parent_origin": trained}) == note
    assert intent_count_note({"kind": "intents-fit", "k": 12, "parent_origin": trained}) == (
        "<p>K = 12 intents fitted after training (elcrec intents fit)</p>")
    assert intent_count_note({"kind": "imported"}) == ""
