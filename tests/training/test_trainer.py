import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import normalized_mutual_info_score

from elcrec.model.config import ModelConfig
from elcrec.model.intents import assign_intents
from elcrec.training.config import TrainConfig
from elcrec.training.data import eval_split, left_pad
from elcrec.training.evaluate import evaluate, pooled_states
from elcrec.training.metrics import hit_ndcg, mask_scores, target_ranks
from elcrec.training.synthetic import SyntheticSpec, generate
from elcrec.training.trainer import Trainer, read_checkpoint


@pytest.fixture
def fixed_threads():
    """Results are bit-for-bit repeatable for a fixed thread count (float sums split differently otherwise)."""
    import faiss

    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(before[0])
    faiss.omp_set_num_threads(before[1])


@pytest.fixture(scope="module")
def planted():
    return generate(SyntheticSpec(n_users=1000, n_items=240, n_intents=6, seed=0))


def small_configs(data, **train):
    mcfg = ModelConfig(n_items=data.n_items, n_layers=1, n_intents=6, d=32, dropout=0.1, attn_dropout=0.1, pooling="real")
    base = {"epochs": 15, "batch_size": 64, "lr": 3e-3, "trade_off": 0.1, "prototype": "shift", "bucket": True}
    return mcfg, TrainConfig(**{**base, **train})


def popularity_metrics(data):
    split = eval_split(data, 50, "test")
    counts = np.bincount(data.items, minlength=data.n_items + 2).astype(np.float32)
    scores = torch.from_numpy(counts).repeat(len(split.targets), 1)
    rows = torch.from_numpy(np.repeat(np.arange(len(split.seen)), [len(s) for s in split.seen]))
    cols = torch.from_numpy(np.concatenate(split.seen))
    return hit_ndcg(target_ranks(mask_scores(scores, rows, cols, "strict"), torch.from_numpy(split.targets)))


def test_learned_intents_recover_planted_ones_and_beat_popularity(planted):
    data, truth = planted
    mcfg, tcfg = small_configs(data)
    model = Trainer(mcfg, tcfg, data, log=lambda _: None).fit()
    inputs = left_pad([data.sequence(u) for u in range(data.n_users)], mcfg.max_len)
    _, ids = assign_intents(pooled_states(model, inputs), model.intent_centers.detach())
    nmi = normalized_mutual_info_score(truth, ids[:, 0].numpy())
    ours = evaluate(model, data, "test", ("strict",))["strict"]
    pop = popularity_metrics(data)
    print(f"NMI {nmi:.3f}; NDCG@10 ours {ours['NDCG@10']:.4f} vs popularity {pop['NDCG@10']:.4f}")
    assert nmi > 0.6
    assert ours["NDCG@10"] > 3 * pop["NDCG@10"]
    assert ours["HIT@10"] > 3 * pop["HIT@10"]


def test_training_is_deterministic_for_a_seed(planted, fixed_threads):
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=2)
    a = Trainer(mcfg, tcfg, data, log=lambda _: None).fit()
    b = Trainer(mcfg, tcfg, data, log=lambda _: None).fit()
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


# The balanced loss's queue of earlier states is part of the run's state: resumed, it must be the one saved.
@pytest.mark.parametrize("settings", [{}, {"intent_loss": "balanced", "intent_queue": 200}], ids=["elcm", "queue"])
def test_an_interrupted_run_resumes_to_the_same_result(planted, tmp_path, fixed_threads, settings):
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=3, **settings)
    straight = Trainer(mcfg, tcfg, data, tmp_path / "a", log=lambda _: None)
    straight.fit()

    first = Trainer(mcfg, small_configs(data, epochs=3, **settings)[1], data, tmp_path / "b", log=lambda _: None)
    first.run_epoch()
    first.save_checkpoint()  # as if killed after the first epoch
    logs: list[str] = []
    resumed = Trainer(mcfg, tcfg, data, tmp_path / "b", log=logs.append)
    resumed.fit()
    assert any("resumed" in line and "after epoch 1" in line for line in logs)
    assert resumed.state.epoch == 3
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_resume_with_other_settings_is_refused(planted, tmp_path):
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=1)
    Trainer(mcfg, tcfg, data, tmp_path, log=lambda _: None).fit()
    with pytest.raises(ValueError, match="other settings"):
        Trainer(mcfg, small_configs(data, epochs=1, lr=1e-2)[1], data, tmp_path, log=lambda _: None).fit()


def test_a_run_still_training_is_read_from_its_checkpoint(planted, tmp_path):
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=3, intent_loss="balanced", intent_settle=5)
    with pytest.raises(FileNotFoundError, match="checkpoint.pt does not exist"):
        read_checkpoint(tmp_path)
    trainer = Trainer(mcfg, tcfg, data, tmp_path, log=lambda _: None)
    trainer.run_epoch()
    with torch.no_grad():  # the weights move on past the best so far, as in the next epoch
        for p in trainer.model.parameters():
            p.add_(1.0)
    trainer.save_checkpoint()
    run = read_checkpoint(tmp_path)
    assert (run.model_config, run.train_config) == (mcfg, tcfg)
    assert (run.state.epoch, run.state.best_epoch) == (1, trainer.state.best_epoch)
    model = run.model()
    assert not model.training
    assert trainer.best_weights is not None
    for k, v in trainer.best_weights.items():  # the best weights so far, what export would take
        assert torch.equal(v, model.state_dict()[k]), k


def test_a_run_resumes_under_other_stopping_rules(planted, tmp_path):
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=2)
    Trainer(mcfg, tcfg, data, tmp_path, log=lambda _: None).fit()
    logs: list[str] = []
    longer = Trainer(mcfg, small_configs(data, epochs=3, patience=7)[1], data, tmp_path, log=logs.append)
    longer.fit()
    assert longer.state.epoch == 3 and any("epochs 3 (was 2)" in line and "patience 7" in line for line in logs)
    # fewer epochs than already run: nothing more is trained, the best epoch so far is kept
    shorter = Trainer(mcfg, small_configs(data, epochs=1)[1], data, tmp_path, log=lambda _: None)
    shorter.fit()
    assert shorter.state.epoch == 3
    for k, v in longer.model.state_dict().items():
        assert torch.equal(v, shorter.model.state_dict()[k]), k


def test_settling_moves_only_the_centers_and_a_finished_run_takes_it_on_resume(planted, tmp_path, fixed_threads):
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=2, intent_loss="balanced")
    plain = Trainer(mcfg, tcfg, data, tmp_path, log=lambda _: None).fit()
    logs: list[str] = []
    again = small_configs(data, epochs=2, intent_loss="balanced", intent_settle=3)[1]
    assert again.trajectory() == tcfg.trajectory()  # what follows the last epoch does not name the run
    settled = Trainer(mcfg, again, data, tmp_path, log=logs.append).fit()
    assert any("intent_settle 3 (was 0)" in line for line in logs)
    assert any("intent centers settled: 3 epochs" in line for line in logs)
    for k, v in plain.state_dict().items():
        if k == "intent_centers":
            assert not torch.allclose(v, settled.state_dict()[k])
            assert torch.allclose(settled.state_dict()[k].norm(dim=1), torch.ones(len(v)))
        else:
            assert torch.equal(v, settled.state_dict()[k]), k  # the encoder and items are the trained ones


def test_settled_centers_are_kept_only_where_at_least_as_good_on_validation(planted, monkeypatch, fixed_threads):
    from elcrec.training import intent_settle

    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=2, intent_loss="balanced")
    model = Trainer(mcfg, tcfg, data, log=lambda _: None).fit()
    valid = eval_split(data, mcfg.max_len, "valid")
    real = intent_settle.settle_model(model, data, valid, 20, 0.1)
    assert real.kept == ("settled" if intent_settle.better_settled(real.before, real.after) else "trained")
    # "settled" centers all alike put (nearly) every user in one intent, which says little of the next item
    monkeypatch.setattr(intent_settle, "settle_centers", lambda states, centers, *a, **k: F.normalize(
        centers[:1].repeat(len(centers), 1), dim=-1))
    worse = intent_settle.settle_model(model, data, valid, 20, 0.1)
    assert worse.after.largest > 0.5 and worse.after.lift < 1.2 < worse.before.lift
    assert worse.kept == "trained" and torch.equal(worse.centers, model.intent_centers.detach().float())


def test_prefix_samples_train_and_keep_old_run_names(planted):
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=3, samples="prefixes", rec_loss="sampled", n_negatives=64)
    trainer = Trainer(mcfg, tcfg, data, log=lambda _: None)
    assert len(trainer.train.inputs) == int((data.lengths[data.lengths >= 4] - 3).sum())
    model = trainer.fit()
    assert evaluate(model, data, "test", ("strict",))["strict"]["NDCG@10"] > 3 * popularity_metrics(data)["NDCG@10"]
    # the setting is named only where it is not the default: runs recorded before it keep their names
    assert "samples" in tcfg.trajectory() and "samples" not in small_configs(data)[1].trajectory()


def test_the_frequency_filter_trains_on_prefixes_and_is_refused_on_sequences(planted):
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=3, samples="prefixes", rec_loss="softmax")
    mcfg = dataclasses.replace(mcfg, mix_alpha=0.7, freq_bins=3)
    model = Trainer(mcfg, tcfg, data, log=lambda _: None).fit()
    assert evaluate(model, data, "test", ("strict",))["strict"]["NDCG@10"] > 3 * popularity_metrics(data)["NDCG@10"]
    with pytest.raises(ValueError, match="needs samples 'prefixes'"):
        Trainer(mcfg, dataclasses.replace(tcfg, samples="sequence"), data, log=lambda _: None)


def test_early_stopping_keeps_the_best_epoch(planted):
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=30, patience=1, lr=0.3)  # a huge lr: validation soon gets worse
    trainer = Trainer(mcfg, tcfg, data, log=lambda _: None)
    trainer.fit()
    assert trainer.state.epoch < 30
    assert trainer.state.best_epoch == trainer.state.epoch - 1
    assert trainer.summary()["stopped"] == "patience"
    capped = Trainer(mcfg, dataclasses.replace(tcfg, epochs=1), data, log=lambda _: None)
    capped.fit()
    assert capped.summary()["stopped"] == "epochs"


def test_random_batches_run_in_length_groups_with_the_same_states(planted):
    """batches 'random': uniform batches (not sorted by length), whose encoder pass runs in trimmed length groups
    and gives the hidden states of one pass over the whole batch at every real position."""
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=2, samples="prefixes", rec_loss="softmax", batches="random")
    mcfg = dataclasses.replace(mcfg, mix_alpha=0.7, freq_bins=3, n_layers=2)
    trainer = Trainer(mcfg, tcfg, data, log=lambda _: None)
    batches = trainer.batches()
    lengths = (trainer.train.inputs > 0).sum(axis=1)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert np.mean([np.ptp(lengths[b]) for b in batches]) > 5  # mixed lengths, where length batches span ~0
    trainer.model.eval()
    idx = next(b for b in batches if np.ptp(lengths[b]) > 8)
    ids = torch.from_numpy(trainer.train.inputs[idx])
    with torch.no_grad():
        grouped, whole = trainer.encode(ids), trainer.net(ids)
    real = ids > 0
    assert torch.allclose(grouped[real], whole[real], atol=1e-5)
    model = trainer.fit()
    assert evaluate(model, data, "test", ("strict",))["strict"]["NDCG@10"] > 3 * popularity_metrics(data)["NDCG@10"]
    # the setting is named only where it is not the default, and is refused where batches are not trimmed
    assert tcfg.trajectory()["batches"] == "random" and "batches" not in small_configs(data)[1].trajectory()
    with pytest.raises(ValueError, match="batches 'random'"):
        Trainer(mcfg, dataclasses.replace(tcfg, bucket=False), data, log=lambda _: None)


def test_a_weight_average_is_validated_kept_and_resumed(planted, tmp_path, fixed_threads):
    """ema: each epoch validates the moving average of the weights, the best average is the model returned, training
    goes on with the raw weights, and an interrupted run resumes to the same average."""
    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=3, ema=0.99)
    straight = Trainer(mcfg, tcfg, data, tmp_path / "a", log=lambda _: None)
    straight.run_epoch()  # the first epoch is the best so far: its average is kept, not the raw weights
    names = [k for k, _ in straight.model.named_parameters()]
    raw = [p.detach().clone() for p in straight.model.parameters()]
    assert all(torch.equal(straight.best_weights[k], e) for k, e in zip(names, straight.ema, strict=True))
    assert not all(torch.equal(straight.best_weights[k], p) for k, p in zip(names, raw, strict=True))
    with straight.averaged_weights():  # the block swaps the average in, and the raw weights back after
        inside = [p.detach().clone() for p in straight.model.parameters()]
    assert all(torch.equal(e, p) for e, p in zip(straight.ema, inside, strict=True))
    assert all(torch.equal(a, p) for a, p in zip(raw, straight.model.parameters(), strict=True))
    model = straight.fit()
    assert straight.state.ema_steps == 3 * len(straight.batches())
    assert evaluate(model, data, "test", ("strict",))["strict"]["NDCG@10"] > 3 * popularity_metrics(data)["NDCG@10"]

    first = Trainer(mcfg, tcfg, data, tmp_path / "b", log=lambda _: None)
    first.run_epoch()
    first.save_checkpoint()  # as if killed after the first epoch
    resumed = Trainer(mcfg, tcfg, data, tmp_path / "b", log=lambda _: None)
    resumed.fit()
    for a, b in zip(straight.ema, resumed.ema, strict=True):
        assert torch.equal(a, b)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert "ema" not in small_configs(data)[1].trajectory()  # runs recorded before the setting keep their names


def test_a_finished_run_settles_again_at_its_own_temperature(planted, tmp_path, monkeypatch, fixed_threads):
    from elcrec.training import trainer as trainer_module

    data, _ = planted
    mcfg, tcfg = small_configs(data, epochs=2, intent_loss="balanced")
    Trainer(mcfg, tcfg, data, tmp_path, log=lambda _: None).fit()
    asked: list[float] = []
    real = trainer_module.settle_model

    def recorded(model, data, valid, epochs, temperature, *args):
        asked.append(temperature)
        return real(model, data, valid, epochs, temperature, *args)

    monkeypatch.setattr(trainer_module, "settle_model", recorded)
    for settle_temperature, expected in ((None, tcfg.intent_temperature), (0.4, 0.4)):
        logs: list[str] = []
        again = small_configs(data, epochs=2, intent_loss="balanced", intent_settle=3,
                              intent_settle_temperature=settle_temperature)[1]
        trainer = Trainer(mcfg, again, data, tmp_path, log=logs.append)
        trainer.fit()  # resumed after its last epoch: only the settling runs
        assert asked[-1] == expected and trainer.summary()["intent_settling"]["temperature"] == expected
        assert any(f"intent centers settled: 3 epochs at temperature {expected:g}" in line for line in logs)
