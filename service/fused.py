"""The encoder as the service runs it: ELCRec's forward with fewer, larger operations, the same function.

Per layer, the query, key and value projections are one matrix product (a (d, 3d) weight made from the three), and
the attention is PyTorch's fused scaled_dot_product_attention with the model's own additive mask (no (B, h, T, T)
scores written out and read back, no transposed copies). Everything else is the model's own modules.

Models that pool over real positions only (pooling "real") are run *packed*: the per-position work (embeddings,
projections, layer norms, feed-forward), most of a layer's arithmetic, runs on the batch's real positions alone,
and only the attention and the frequency filter, which mix positions, see the padded (B, t) layout. A batch of new
histories is mostly padding (short histories beside one long one), and the padding's states are never read under
that pooling: they come out as zeros. The real positions' states are the model's: a padding key is masked by
MASK_VALUE, whose weight underflows to exactly 0 whatever its value, and the filter reads padding as zeros. Under
pooling "all" the padding's states are averaged into the user's intent, and a padding query attends to every key
(all of its keys are masked alike, so none is), so those models run at full length. Measured figures:
docs/SERVING.md "Where the time goes".
"""

from __future__ import annotations

import logging
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from elcrec.model.encoder import Block, ELCRec, attention_mask

log = logging.getLogger("elcrec.fused")


class FusedEncoder(nn.Module):
    """Item ids (B, t <= T), left-padded with 0, in; the hidden states of `model` (B, t, d) out: at every position,
    or, for a model with pooling "real" (`packed`), at the real positions, zeros at the padding."""

    def __init__(self, model: ELCRec) -> None:
        super().__init__()
        self.model = model
        self.cfg = model.cfg
        self.packed = model.cfg.pooling != "all"
        self.qkv = nn.ModuleList()
        for block in cast(list[Block], list(model.blocks)):
            a = block.attention
            fused = nn.Linear(a.query.in_features, 3 * a.query.out_features, device=a.query.weight.device,
                              dtype=a.query.weight.dtype)
            with torch.no_grad():
                fused.weight.copy_(torch.cat([a.query.weight, a.key.weight, a.value.weight]))
                fused.bias.copy_(torch.cat([a.query.bias, a.key.bias, a.value.bias]))
            fused.requires_grad_(False)
            self.qkv.append(fused)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        B, t = ids.shape
        if t > self.cfg.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len {self.cfg.max_len}")
        return self._packed(ids) if self.packed else self._full(ids)

    def _full(self, ids: torch.Tensor) -> torch.Tensor:
        m = self.model
        B, t = ids.shape
        x = m.norm(m.item_embeddings(ids) + m.position_embeddings.weight[self.cfg.max_len - t :])  # (B, t, d)
        mask = attention_mask(ids).to(x.dtype)  # (B, 1, t, t)
        real = (ids > 0).unsqueeze(-1).to(x.dtype) if self.cfg.mix_alpha > 0 else None
        heads = self.cfg.n_heads
        blocks = cast(list[Block], list(m.blocks))
        for block, qkv in zip(blocks, cast(list[nn.Linear], list(self.qkv)), strict=True):
            a = block.attention
            q, k, v = qkv(x).view(B, t, 3, heads, -1).permute(2, 0, 3, 1, 4)  # each (B, h, t, dh)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(B, t, -1)
            h = a.norm(a.dense(ctx) + x)
            if block.mix_alpha > 0:
                assert real is not None
                h = block.mix_alpha * block.filter(x, real) + (1.0 - block.mix_alpha) * h
            x = block.ffn(h)
        return x

    def _packed(self, ids: torch.Tensor) -> torch.Tensor:
        m = self.model
        B, t = ids.shape
        d = self.cfg.d
        at = (ids.reshape(-1) > 0).nonzero().squeeze(1)  # (n,) the real positions in the flattened (B * t)
        positions = at % t + (self.cfg.max_len - t)  # in the model's T-long frame (left padding)
        x = m.norm(m.item_embeddings(ids.reshape(-1)[at]) + m.position_embeddings(positions))  # (n, d)
        mask = attention_mask(ids).to(x.dtype)  # (B, 1, t, t)
        heads = self.cfg.n_heads
        blocks = cast(list[Block], list(m.blocks))
        for block, qkv in zip(blocks, cast(list[nn.Linear], list(self.qkv)), strict=True):
            a = block.attention
            spread = x.new_zeros(B * t, 3 * d).index_copy_(0, at, qkv(x))  # padding keys are masked whatever they are
            q, k, v = spread.view(B, t, 3, heads, -1).permute(2, 0, 3, 1, 4)  # each (B, h, t, dh)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(B * t, d)[at]
            h = a.norm(a.dense(ctx) + x)
            if block.mix_alpha > 0:
                f = block.filter  # FrequencyFilter.forward on the real rows: the padding enters as zeros
                xr = x.new_zeros(B * t, d).index_copy_(0, at, x).view(B, t, d).float()
                low = torch.matmul(f.low_pass[:t, :t].float(), xr).reshape(B * t, d)[at]
                h = block.mix_alpha * f.blend(x, x.float(), low) + (1.0 - block.mix_alpha) * h
            x = block.ffn(h)
        return x.new_zeros(B * t, d).index_copy_(0, at, x).view(B, t, d)


def read_states(hidden: torch.Tensor, ids: torch.Tensor, pooling: str) -> torch.Tensor:
    """The states a service reads of (B, t, d) hidden states: every position under pooling "all", the real ones
    otherwise (padding zeroed): what a faster encoder must give as the model does."""
    return hidden if pooling == "all" else hidden * (ids > 0).unsqueeze(-1).to(hidden.dtype)


def fused(model: ELCRec) -> ELCRec | FusedEncoder:
    """`model`'s encoder as FusedEncoder when it gives the model's hidden states on probe inputs (within float
    rounding), else the model itself (with a warning): a faster path must never serve other answers."""
    try:
        encoder = FusedEncoder(model).eval()
        device = model.item_embeddings.weight.device
        g = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            for shape in ((1, 1), (3, model.cfg.max_len), (5, max(1, model.cfg.max_len // 3))):
                ids = torch.randint(1, model.cfg.n_items + 1, shape, generator=g).to(device)
                ids[0, : shape[1] - 1] = 0  # one history of a single item, padded
                want = read_states(model(ids).float(), ids, model.cfg.pooling)
                got = read_states(encoder(ids).float(), ids, model.cfg.pooling)
                atol, rtol = (1e-5, 1e-4) if next(model.parameters()).dtype == torch.float32 else (5e-2, 5e-2)
                if not torch.allclose(got, want, atol=atol, rtol=rtol):
                    raise RuntimeError(f"differs from the model by {(got - want).abs().max().item():.2e}")
    except Exception as exc:
        log.warning("serving the model's own encoder, not the fused one (%s: %s)", type(exc).__name__, exc)
        return model
    return encoder
