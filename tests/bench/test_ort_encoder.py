"""bench.ort_encoder's ONNX Runtime encoders (timed by bench.encoder_levers) give the model's hidden states."""

from __future__ import annotations

import pytest
import torch

from bench.ort_encoder import onnx_encoder
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.service.fused import FusedEncoder

pytest.importorskip("onnxruntime", reason="onnxruntime is optional: pip install -c constraints.txt -e '.[onnx]'")


def model_and_histories(batch: int, t: int, mix_alpha: float = 0.0) -> tuple[ELCRec, torch.Tensor]:
    cfg = ModelConfig(n_items=300, d=32, n_layers=2, n_heads=2, max_len=50, n_intents=8, mix_alpha=mix_alpha)
    torch.manual_seed(0)
    model = ELCRec(cfg).eval()
    with torch.no_grad():  # weights of a trained model's size, not the initial 0.02
        for p in model.parameters():
            p.normal_(0, 0.3)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, cfg.n_items + 1, (batch, t), generator=g)
    for b in range(batch):  # lengths 1..t, left-padded
        ids[b, : t - (b % t + 1)] = 0
    return model, ids


@pytest.mark.parametrize(("level", "fusions", "contrib"),
                         [("basic", False, False), ("all", False, False), ("all", True, False), ("all", False, True)])
@pytest.mark.parametrize("t", [50, 7])  # full length ("pooling all"), and a batch trimmed of its padding
def test_the_onnx_encoder_gives_the_models_hidden_states(level: str, fusions: bool, contrib: bool, t: int) -> None:
    model, ids = model_and_histories(9, t)
    encoder = onnx_encoder(FusedEncoder(model).eval(), threads=1, level=level, transformer_fusions=fusions,
                           contrib_attention=contrib)
    assert encoder is not None
    with torch.inference_mode():
        want = model(ids)
    got = encoder(ids)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), (got - want).abs().max().item()
    assert encoder(ids[:1]).shape == (1, t, model.cfg.d)  # another batch size than the export's


def test_the_contrib_attention_export_keeps_the_frequency_filter() -> None:
    model, ids = model_and_histories(5, 50, mix_alpha=0.4)
    encoder = onnx_encoder(FusedEncoder(model).eval(), contrib_attention=True)
    assert encoder is not None
    with torch.inference_mode():
        want = model(ids)
    assert torch.allclose(encoder(ids), want, atol=1e-5, rtol=1e-4)


def test_an_unknown_optimisation_level_is_refused() -> None:
    model, _ = model_and_histories(1, 1)
    with pytest.raises(ValueError, match="level must be one of basic, all"):
        onnx_encoder(model, level="extended")


def test_the_contrib_attention_needs_the_fused_encoder() -> None:
    model, _ = model_and_histories(1, 1)
    with pytest.raises(ValueError, match="FusedEncoder"):
        onnx_encoder(model, contrib_attention=True)
