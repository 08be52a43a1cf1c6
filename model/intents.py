"""Intent assignment: a sequence's intent is the nearest (normalised) center; and what sets an intent apart."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The softmax temperature over the centers of intent training (TrainConfig.intent_temperature's default), used for
# models trained without one (ELCM) or imported.
DEFAULT_TEMPERATURE = 0.1


def squared_distances(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """(N, d), (K, d) -> (N, K) squared Euclidean distances."""
    if x.shape[-1] != centers.shape[-1]:
        raise ValueError(f"dimension mismatch: x has {x.shape[-1]}, centers have {centers.shape[-1]}")
    return (x.pow(2).sum(-1, keepdim=True) - 2 * x @ centers.T + centers.pow(2).sum(-1)).clamp_min(0.0)


def assign_intents(pooled: torch.Tensor, centers: torch.Tensor, top: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled sequence states (B, d) and raw centers (K, d) -> (distances, ids), each (B, top), nearest first.

    Both sides are L2-normalised first, as in training.
    """
    values, ids, _ = intent_distribution(pooled, centers, top)
    return values, ids


def intent_distribution(
    pooled: torch.Tensor, centers: torch.Tensor, top: int = 1, temperature: float = DEFAULT_TEMPERATURE
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """As assign_intents, with the probability of each of the top intents (B, top) under softmax(cos / temperature)
    over all K centers, the distribution that intent training (balanced_clustering) fits; for unit vectors
    cos = 1 - distance / 2, so it is softmax(-distance / (2 temperature))."""
    dist = squared_distances(F.normalize(pooled, dim=-1), F.normalize(centers, dim=-1))
    values, ids = torch.topk(dist, k=min(top, centers.shape[0]), dim=-1, largest=False)
    log_p = torch.log_softmax(-dist / (2 * temperature), dim=-1)
    return values, ids, log_p.gather(1, ids).exp()


def characteristic_scores(centers: torch.Tensor, mean_state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """How much each item sets each intent apart from the average user: (K, d), (d,), (N, d) -> (K, N).

    An item scores (normalised center - mean of the users' normalised pooled states) . item embedding. The raw
    center . item is high for the globally popular items under every center (so that all intents list the same
    items); subtracting the average user's direction leaves what is particular to the intent.
    """
    return (F.normalize(centers, dim=-1) - mean_state) @ items.T
