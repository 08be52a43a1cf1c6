"""SASRec encoder (post-LayerNorm) with K learnable intent centers: the whole ELCRec model."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from elcrec.model.config import ModelConfig

LN_EPS = 1e-12
MASK_VALUE = -10000.0


class Dropout(nn.Module):
    """Inverted dropout from a uniform draw: same distribution as nn.Dropout, about twice as fast on CPU."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head = cfg.d // cfg.n_heads
        self.query = nn.Linear(cfg.d, cfg.d)
        self.key = nn.Linear(cfg.d, cfg.d)
        self.value = nn.Linear(cfg.d, cfg.d)
        self.dense = nn.Linear(cfg.d, cfg.d)
        self.attn_dropout = Dropout(cfg.attn_dropout)
        self.dropout = Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.d, eps=LN_EPS)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q = self.query(x).view(B, T, self.n_heads, self.head).transpose(1, 2)  # (B, h, T, dh)
        k = self.key(x).view(B, T, self.n_heads, self.head).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_heads, self.head).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head) + mask  # (B, h, T, T)
        probs = self.attn_dropout(scores.softmax(dim=-1))
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, d)
        return self.norm(self.dropout(self.dense(ctx)) + x)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.dense_1 = nn.Linear(cfg.d, 4 * cfg.d)
        self.dense_2 = nn.Linear(4 * cfg.d, cfg.d)
        self.dropout = Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.d, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dense_2(F.gelu(self.dense_1(x)))  # exact (erf) GELU
        return self.norm(self.dropout(h) + x)


class FrequencyFilter(nn.Module):
    """BSARec's inductive bias: the freq_bins lowest DFT bins over time kept, the rest scaled by beta (d,).

    Padding positions enter as zeros and the transform runs over T positions, so a batch trimmed of its
    all-padding columns gives the same values at real positions as the full one (a low-pass is a circular
    convolution: zero-padding on the right instead of the left only shifts it).

    The low-pass (rfft over T positions, bins cut, irfft) is linear in the sequence, so it is applied as the
    (T, T) matrix it amounts to, built once by that FFT round trip on the identity: one matrix product instead
    of two FFTs, a quarter to a third of a CPU training step less, the same values up to float32 rounding.
    """

    low_pass: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        keep = torch.zeros(cfg.max_len // 2 + 1, 1, dtype=torch.float64)  # per rfft bin: 1 = low, kept whole
        keep[: cfg.freq_bins] = 1.0
        eye = torch.eye(cfg.max_len, dtype=torch.float64)
        spec = torch.fft.rfft(eye, dim=0, norm="ortho") * keep  # column j: the spectrum of a unit impulse at j
        low_pass = torch.fft.irfft(spec, n=cfg.max_len, dim=0, norm="ortho").float()  # (T, T): low = L @ x
        self.register_buffer("low_pass", low_pass, persistent=False)  # derived from the config, not saved
        self.sqrt_beta = nn.Parameter(torch.randn(1, 1, cfg.d))
        self.dropout = Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.d, eps=LN_EPS)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        xr = (x * real).float()  # (B, t, d); the filter runs in float32 whatever the model's dtype
        # The inputs past t are the zeros of the padding. float(): the buffer follows the model to bf16/fp16.
        low = torch.matmul(self.low_pass[:t, :t].float(), xr)
        return self.blend(x, xr, low)

    def blend(self, x: torch.Tensor, xr: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """The filter's output from its input `x`, that input in float32 with the padding zeroed (`xr`) and the
        low-pass of `xr`, position by position (any leading shape: the service's packed rows too)."""
        y = (low + self.sqrt_beta.float().square().reshape(-1) * (xr - low)).to(x.dtype)
        return self.norm(self.dropout(y) + x)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(cfg)
        self.mix_alpha = cfg.mix_alpha
        if cfg.mix_alpha > 0:  # the paper's model has no such parameters
            self.filter = FrequencyFilter(cfg)
        self.ffn = FeedForward(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        h = self.attention(x, mask)
        if self.mix_alpha > 0:
            assert real is not None
            h = self.mix_alpha * self.filter(x, real) + (1.0 - self.mix_alpha) * h
        return self.ffn(h)


def attention_mask(ids: torch.Tensor) -> torch.Tensor:
    """Additive mask (B, 1, T, T): MASK_VALUE where the key is padding or in the future."""
    T = ids.shape[1]
    keep = (ids > 0)[:, None, None, :] & torch.ones(T, T, dtype=torch.bool, device=ids.device).tril()
    return (~keep).to(torch.float32) * MASK_VALUE


class ELCRec(nn.Module):
    """Item ids (B, t <= T), left-padded with 0, in; hidden states (B, t, d) out.

    Inputs shorter than T are read as the last t positions of a T-long sequence, so a batch trimmed
    of its all-padding columns gives the same hidden states at real positions as the full one.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_embeddings = nn.Embedding(cfg.vocab_size, cfg.d, padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg.max_len, cfg.d)
        self.norm = nn.LayerNorm(cfg.d, eps=LN_EPS)
        self.dropout = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.intent_centers = nn.Parameter(torch.zeros(cfg.n_intents, cfg.d))  # (K, d)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # The reference overwrites the padding row too (it stays fixed: padding_idx has no gradient).
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        B, t = ids.shape
        if t > self.cfg.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len {self.cfg.max_len}")
        pos = self.position_embeddings.weight[self.cfg.max_len - t :]  # (t, d)
        x = self.dropout(self.norm(self.item_embeddings(ids) + pos))  # (B, t, d)
        mask = attention_mask(ids).to(x.dtype)  # half-precision models add it in their own dtype
        real = (ids > 0).unsqueeze(-1).to(x.dtype) if self.cfg.mix_alpha > 0 else None
        for block in self.blocks:
            x = block(x, mask, real)
        return x

    def pool(self, hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Mean over time (B, d), by the config's pooling rule; not normalised."""
        if self.cfg.pooling == "all":
            if hidden.shape[1] != self.cfg.max_len:
                raise ValueError("pooling 'all' needs full-length (T) inputs")
            return hidden.mean(dim=1)
        real = (ids > 0).unsqueeze(-1).to(hidden.dtype)  # (B, t, 1)
        return (hidden * real).sum(dim=1) / real.sum(dim=1).clamp_min(1.0)

    def item_table(self) -> torch.Tensor:
        return self.item_embeddings.weight  # (N + 2, d), tied output weights

    def normalized_centers(self) -> torch.Tensor:
        return F.normalize(self.intent_centers, dim=-1)
