"""The service's fused encoder gives the model's hidden states; where it would not, the model serves."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch

from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.service.fused import FusedEncoder, fused, read_states


def trained_like(cfg: ModelConfig) -> ELCRec:
    torch.manual_seed(0)
    model = ELCRec(cfg).eval()
    with torch.no_grad():  # weights of a trained model's size, not the initial 0.02
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def histories(cfg: ModelConfig, batch: int, t: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, cfg.n_items + 1, (batch, t), generator=g)
    for b in range(batch):  # lengths 1..t, left-padded
        ids[b, : t - (b % t + 1)] = 0
    return ids


@pytest.mark.parametrize("pooling", ["all", "real"])  # run at full length, and packed to the real positions
@pytest.mark.parametrize("mix_alpha", [0.0, 0.4])  # the paper's blocks, and blocks with the frequency filter
@pytest.mark.parametrize("t", [50, 17, 1])  # full length, a batch trimmed of its padding, one item
def test_fused_encoder_gives_the_models_hidden_states(pooling: str, mix_alpha: float, t: int) -> None:
    cfg = ModelConfig(n_items=300, d=32, n_layers=3, n_heads=2, max_len=50, n_intents=8, mix_alpha=mix_alpha,
                      pooling=pooling)
    model = trained_like(cfg)
    ids = histories(cfg, 9, t)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's, about the length check (as service/bundle.py traces)
        want = read_states(model(ids), ids, pooling)
        got = FusedEncoder(model)(ids)
        traced = torch.jit.trace(FusedEncoder(model), ids[:2], check_trace=False)(ids)
    assert torch.allclose(read_states(got, ids, pooling), want, atol=1e-5, rtol=1e-4)
    assert torch.allclose(read_states(traced, ids, pooling), want, atol=1e-5, rtol=1e-4)


def test_a_packed_batch_gives_each_history_the_states_it_has_alone() -> None:
    """Packed (pooling "real"), the padding a short history gets beside a long one changes none of its states,
    and the service's readings of the batch (last state, pooled state) are the model's."""
    cfg = ModelConfig(n_items=300, d=32, n_layers=2, n_heads=2, max_len=50, n_intents=8, mix_alpha=0.4,
                      pooling="real")
    model = trained_like(cfg)
    encoder = FusedEncoder(model)
    assert encoder.packed
    ids = histories(cfg, 12, 50)  # lengths 1..12 beside each other, padded to 50
    with torch.inference_mode():
        batch = encoder(ids)
        assert (batch[ids == 0] == 0).all()  # the padding's states: never read, not computed
        for b in range(len(ids)):
            alone = encoder(ids[b : b + 1, ids.shape[1] - (b + 1) :])  # the history trimmed of its padding
            assert torch.allclose(batch[b, ids.shape[1] - (b + 1) :], alone[0], atol=1e-5, rtol=1e-4)
        want = model(ids)
        assert torch.allclose(batch[:, -1], want[:, -1], atol=1e-5, rtol=1e-4)
        assert torch.allclose(model.pool(batch, ids), model.pool(want, ids), atol=1e-5, rtol=1e-4)


def test_a_fused_encoder_that_differs_is_not_served(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    model = trained_like(ModelConfig(n_items=50, d=16, n_layers=1, max_len=10, n_intents=4))
    assert isinstance(fused(model), FusedEncoder)
    forward = FusedEncoder.forward
    monkeypatch.setattr(FusedEncoder, "forward", lambda self, ids: forward(self, ids) * 1.001)
    with caplog.at_level(logging.WARNING):
        assert fused(model) is model
    assert "serving the model's own encoder" in caplog.text
