"""The model's hyperparameters: one frozen dataclass passed whole to every constructor."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

# How a sequence is mean-pooled for intents (the setting below); the CLI and checks read the choices from here.
Pooling = Literal["all", "real"]


@dataclass(frozen=True)
class ModelConfig:
    n_items: int  # N: real items are 1..N, row 0 is padding, row N + 1 the mask token
    d: int = 64
    n_layers: int = 2
    n_heads: int = 2
    max_len: int = 50  # T
    dropout: float = 0.5
    attn_dropout: float = 0.5
    n_intents: int = 256  # K
    # How a sequence is mean-pooled for intents: "all" = over all T positions, padding included
    # (the reference); "real" = over real items only (padding positions contribute nothing).
    pooling: Pooling = "all"
    # Beyond the paper (BSARec, Shin et al. 2024): each block mixes its self-attention with a frequency filter,
    # mix_alpha * filter + (1 - mix_alpha) * attention; the filter keeps the freq_bins lowest DFT bins of the
    # sequence and rescales the rest by a learned per-dimension weight. 0 = attention alone (the paper). The
    # filter sees the whole input sequence, so a model with mix_alpha > 0 is trained on prefix samples only.
    mix_alpha: float = 0.0
    freq_bins: int = 3

    def __post_init__(self) -> None:
        problems = []
        if self.n_items < 1:
            problems.append(f"n_items must be >= 1, got {self.n_items}")
        if self.d < 1 or self.n_heads < 1 or self.d % self.n_heads:
            problems.append(f"d ({self.d}) must be a positive multiple of n_heads ({self.n_heads})")
        if self.n_layers < 1 or self.max_len < 1 or self.n_intents < 1:
            problems.append("n_layers, max_len and n_intents must be >= 1")
        if not 0.0 <= self.mix_alpha < 1.0:
            problems.append(f"mix_alpha must be in [0, 1), got {self.mix_alpha}")
        if not 1 <= self.freq_bins <= self.max_len // 2 + 1:
            problems.append(f"freq_bins must be in [1, max_len // 2 + 1], got {self.freq_bins}")
        if self.pooling not in get_args(Pooling):
            problems.append(f"pooling must be one of {get_args(Pooling)}, got {self.pooling!r}")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    @property
    def vocab_size(self) -> int:
        return self.n_items + 2

    def to_dict(self) -> dict[str, Any]:
        # Settings added after models were exported are left out at their default, so those runs keep their
        # names and checkpoints, and their artifacts load in older releases.
        return settings_dict(self, ADDED_LATER)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**raw)


def defaults(config: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The defaults of the named fields of a config dataclass, read from it (declared once, there)."""
    found = {f.name: f.default for f in dataclasses.fields(config) if f.name in names}
    if set(found) != set(names):
        raise ValueError(f"{config.__name__} has no fields {sorted(set(names) - set(found))}")
    return found


# Settings added after versions were written: left out of the stored config at their default (settings_dict).
ADDED_LATER: dict[str, Any] = defaults(ModelConfig, ("mix_alpha", "freq_bins"))


def settings_dict(config: Any, added_later: dict[str, Any]) -> dict[str, Any]:
    """A config dataclass as a dict, without the settings added later that are at their default: runs and
    artifacts recorded before a setting existed keep their names, checkpoints and manifests."""
    return {k: v for k, v in dataclasses.asdict(config).items() if added_later.get(k, object()) != v}
