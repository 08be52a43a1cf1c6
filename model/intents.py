"""Intent assignment: a sequence's intent is the nearest (normalised) center; and what sets an intent apart."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def squared_distances(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """(N, d), (K, d) -> (N, K) squared Euclidean distances."""
    if x.shape[-1] != centers.shape[-1]:
        raise ValueError(f"dimension mismatch: x has {x.shape[-1]}, centers have {centers.shape[-1]}")
    return (x.pow(2).sum(-1, keepdim=True) - 2 * x @ centers.T + centers.pow(2).sum(-1)).clamp_min(0.0)


def assign_intents(pooled: torch.Tensor, centers: torch.Tensor, top: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled sequence states (B, d) and raw centers (K, d) -> (distances, ids), each (B, top), nearest first.

    Both sides are L2-normalised first, as in training.
    """
    dist = squared_distances(F.normalize(pooled, dim=-1), F.normalize(centers, dim=-1))
    values, ids = torch.topk(dist, k=min(top, centers.shape[0]), dim=-1, largest=False)
    return values, ids


def characteristic_scores(centers: torch.Tensor, mean_state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """How much each item sets each intent apart from the average user: (K, d), (d,), (N, d) -> (K, N).

    An item scores (normalised center - mean of the users' normalised pooled states) . item embedding. The raw
    center . item is high for the globally popular items under every center (so that all intents list the same
    items); subtracting the average user's direction leaves what is particular to the intent.
    """
    return (F.normalize(centers, dim=-1) - mean_state) @ items.T
