import copy

import torch

from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec, attention_mask


def test_mask_blocks_padding_keys_and_the_future():
    ids = torch.tensor([[0, 5, 6]])
    mask = attention_mask(ids)[0, 0]
    assert mask[2, 1] == 0 and mask[2, 2] == 0  # real, past or present
    assert mask[1, 2] < 0  # future
    assert (mask[:, 0] < 0).all()  # padding key


def test_trimmed_batch_gives_the_same_states_at_real_positions():
    torch.manual_seed(0)
    model = ELCRec(ModelConfig(n_items=50, n_layers=2, n_intents=4, max_len=10)).eval()
    full = torch.zeros(2, 10, dtype=torch.long)
    full[0, -3:] = torch.tensor([4, 8, 15])
    full[1, -4:] = torch.tensor([16, 23, 42, 7])
    with torch.no_grad():
        h_full = model(full)
        h_trim = model(full[:, -4:])
    assert torch.allclose(h_full[:, -4:][full[:, -4:] > 0], h_trim[full[:, -4:] > 0], atol=1e-6)


def test_real_pooling_ignores_padding():
    torch.manual_seed(0)
    model = ELCRec(ModelConfig(n_items=20, n_layers=1, n_intents=2, max_len=6, pooling="real")).eval()
    ids = torch.tensor([[0, 0, 0, 3, 4, 5]])
    with torch.no_grad():
        a = model.pool(model(ids), ids)
        b = model.pool(model(ids[:, -3:]), ids[:, -3:])
    assert torch.allclose(a, b, atol=1e-6)


def test_init_follows_the_reference():
    model = ELCRec(ModelConfig(n_items=1000, n_layers=1, n_intents=2, d=64))
    w = model.item_embeddings.weight
    assert abs(w.std().item() - 0.02) < 0.002
    assert model.blocks[0].attention.query.bias.abs().sum() == 0
    assert model.norm.weight.eq(1).all() and model.norm.eps == 1e-12


def test_frequency_filter_keeps_the_trimmed_batch_rule():
    torch.manual_seed(0)
    cfg = ModelConfig(n_items=50, n_layers=2, n_intents=4, max_len=10, mix_alpha=0.7, freq_bins=2, pooling="real")
    model = ELCRec(cfg).eval()
    full = torch.zeros(2, 10, dtype=torch.long)
    full[0, -3:] = torch.tensor([4, 8, 15])
    full[1, -4:] = torch.tensor([16, 23, 42, 7])
    with torch.no_grad():
        h_full, h_trim = model(full), model(full[:, -4:])
        plain = ELCRec(ModelConfig(n_items=50, n_layers=2, n_intents=4, max_len=10, pooling="real")).eval()(full)
    assert torch.allclose(h_full[:, -4:][full[:, -4:] > 0], h_trim[full[:, -4:] > 0], atol=1e-5)
    assert not torch.allclose(h_full, plain, atol=1e-3)  # the filter does change the states


def test_frequency_filter_passes_a_constant_sequence_and_scales_the_rest():
    from elcrec.model.encoder import FrequencyFilter

    cfg = ModelConfig(n_items=5, max_len=8, mix_alpha=0.5, freq_bins=1, dropout=0.0)
    filt = FrequencyFilter(cfg).eval()
    real = torch.ones(1, 8, 1)
    const = torch.randn(1, 1, 4 * 16).expand(1, 8, 64).clone()
    with torch.no_grad():
        filt.sqrt_beta.zero_()  # beta 0: only the lowest bin (the mean over time) is left
        assert torch.allclose(filt(const, real), filt.norm(2 * const), atol=1e-5)
        wavy = torch.randn(1, 8, 64)
        low = wavy.mean(dim=1, keepdim=True).expand_as(wavy)
        assert torch.allclose(filt(wavy, real), filt.norm(low + wavy), atol=1e-5)


def test_frequency_filter_equals_the_fft_low_pass_over_t_positions_for_trimmed_inputs():
    """The filter applies the low-pass as a (T, T) matrix; it must equal BSARec's FFT round trip over T positions
    (rfft, the lowest bins kept, irfft), for every trimmed width, odd and even T, and any number of bins."""
    from elcrec.model.encoder import FrequencyFilter

    torch.manual_seed(0)
    for max_len, bins in ((8, 1), (10, 3), (11, 2), (50, 3), (50, 26)):
        filt = FrequencyFilter(ModelConfig(n_items=5, max_len=max_len, mix_alpha=0.5, freq_bins=bins, dropout=0.0))
        filt = filt.eval()
        for t in (1, max_len // 2, max_len):
            x = torch.randn(3, t, 64)
            real = (torch.rand(3, t, 1) > 0.3).float()
            xr = (x * real).double()
            spec = torch.fft.rfft(xr, n=max_len, dim=1)
            spec[:, bins:] = 0
            low = torch.fft.irfft(spec, n=max_len, dim=1)[:, :t]
            beta = filt.sqrt_beta.detach().double().square()
            want = filt.norm((low + beta * (xr - low)).float() + x)
            with torch.no_grad():
                assert torch.allclose(filt(x, real), want, atol=1e-5), (max_len, bins, t)


def test_a_filter_model_runs_in_half_precision_close_to_float32():
    """The service may serve in bf16/fp16 (model.to(dtype) converts the low-pass buffer too); the filter itself
    runs in float32 whatever the model's dtype."""
    from elcrec.service.precision import to_precision

    torch.manual_seed(0)
    model = ELCRec(ModelConfig(n_items=50, n_layers=2, n_intents=4, max_len=10, mix_alpha=0.7, pooling="real")).eval()
    ids = torch.randint(1, 51, (4, 10))
    ids[0, :6] = 0  # a short history: padding on the left
    with torch.no_grad():
        full = model(ids)
        for dtype in (torch.bfloat16, torch.float16):
            low = copy.deepcopy(model).to(dtype)(ids)
            assert low.dtype == dtype and torch.allclose(low.float(), full, atol=0.1), dtype
    _, check = to_precision(model, "bf16")
    assert check is not None and check.top10_overlap > 0.9  # its rankings are kept


def test_settings_added_later_stay_out_of_the_config_dict_at_their_default():
    plain = ModelConfig(n_items=5).to_dict()
    assert "mix_alpha" not in plain and "freq_bins" not in plain
    assert ModelConfig.from_dict(plain) == ModelConfig(n_items=5)
    mixed = ModelConfig(n_items=5, mix_alpha=0.7).to_dict()
    assert ModelConfig.from_dict(mixed).mix_alpha == 0.7


def test_bad_filter_settings_are_refused_with_a_message():
    import pytest

    with pytest.raises(ValueError, match="mix_alpha must be in"):
        ModelConfig(n_items=5, mix_alpha=1.0)
    with pytest.raises(ValueError, match="freq_bins must be in"):
        ModelConfig(n_items=5, max_len=8, freq_bins=6)
