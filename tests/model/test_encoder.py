import torch

from model.config import ModelConfig
from model.encoder import ELCRec, attention_mask


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
