"""Mapping from the state_dict released by the ELCRec authors to our module names."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec

_TOP = {
    "item_embeddings.weight": "item_embeddings.weight",
    "position_embeddings.weight": "position_embeddings.weight",
    "LayerNorm.weight": "norm.weight",
    "LayerNorm.bias": "norm.bias",
    "cluster_centers": "intent_centers",
}
_LAYER = re.compile(r"^item_encoder\.layer\.(\d+)\.(.+)$")
_IN_LAYER = {
    "attention.query": "attention.query",
    "attention.key": "attention.key",
    "attention.value": "attention.value",
    "attention.dense": "attention.dense",
    "attention.LayerNorm": "attention.norm",
    "intermediate.dense_1": "ffn.dense_1",
    "intermediate.dense_2": "ffn.dense_2",
    "intermediate.LayerNorm": "ffn.norm",
}


class CheckpointError(Exception):
    pass


def map_state_dict(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in official.items():
        if key in _TOP:
            out[_TOP[key]] = value
            continue
        m = _LAYER.match(key)
        if m is None:
            raise CheckpointError(f"unexpected key in checkpoint: {key!r}")
        module, _, param = m.group(2).rpartition(".")
        if module not in _IN_LAYER:
            raise CheckpointError(f"unexpected key in checkpoint: {key!r}")
        out[f"blocks.{m.group(1)}.{_IN_LAYER[module]}.{param}"] = value
    return out


def config_from_state(official: dict[str, torch.Tensor], n_heads: int = 2) -> ModelConfig:
    """Layer count, K, d, T and N come from the tensor shapes; heads cannot, so they are given."""
    for key in ("item_embeddings.weight", "position_embeddings.weight", "cluster_centers"):
        if key not in official:
            raise CheckpointError(f"checkpoint has no {key!r}: not an ELCRec state_dict")
    vocab, d = official["item_embeddings.weight"].shape
    layers = {int(m.group(1)) for k in official if (m := _LAYER.match(k))}
    if not layers or layers != set(range(max(layers) + 1)):
        raise CheckpointError(f"checkpoint layers are not 0..L-1: {sorted(layers)}")
    return ModelConfig(
        n_items=int(vocab) - 2,
        d=int(d),
        n_layers=len(layers),
        n_heads=n_heads,
        max_len=int(official["position_embeddings.weight"].shape[0]),
        n_intents=int(official["cluster_centers"].shape[0]),
        pooling="all",
    )


def load_official(path: str | Path, n_heads: int = 2) -> ELCRec:
    try:
        # weights_only: the file is a pickle; this refuses anything but tensors and plain containers.
        official = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {path} does not exist") from exc
    except Exception as exc:
        raise CheckpointError(f"{path} is not a loadable PyTorch state_dict: {exc}") from exc
    if isinstance(official, dict) and "state_dict" in official and isinstance(official["state_dict"], dict):
        official = official["state_dict"]
    if not isinstance(official, dict) or not all(isinstance(v, torch.Tensor) for v in official.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors")
    cfg = config_from_state(official, n_heads)
    model = ELCRec(cfg)
    mapped = map_state_dict(official)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")
    return model.eval()
