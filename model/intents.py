"""Intent assignment: a sequence's intent is the nearest (normalised) center, after the version's balancing bias
where it has one; and what sets an intent apart.

A version may carry an intent calibration fitted at export on the training users (training/intent_health.py
calibrate, stored in intents.safetensors): a per-center bias added to the cosines, which spreads the users over the
centers as the balanced loss trained them to be spread, and each center's profile, the normalised mean state of
the training users it holds, which describes the intent by its users rather than by the center itself (a learned
center is not the mean of its users). IntentSpace reads the centers with it; without one it is the nearest center
and the center itself.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    pooled: torch.Tensor, centers: torch.Tensor, top: int = 1, temperature: float = DEFAULT_TEMPERATURE,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """As assign_intents, with the probability of each of the top intents (B, top) under softmax((cos + bias) /
    temperature) over all K centers, the distribution that intent training (balanced_clustering) fits; for unit
    vectors cos = 1 - distance / 2. The intents are ranked by cos + bias (bias: none, or (K,)); the distances
    returned are to the centers themselves."""
    dist = squared_distances(F.normalize(pooled, dim=-1), F.normalize(centers, dim=-1))
    logits = 1 - dist / 2 if bias is None else 1 - dist / 2 + bias.to(dist)
    _, ids = torch.topk(logits, k=min(top, centers.shape[0]), dim=-1)
    log_p = torch.log_softmax(logits / temperature, dim=-1)
    return dist.gather(1, ids), ids, log_p.gather(1, ids).exp()


def characteristic_scores(centers: torch.Tensor, mean_state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """How much each item sets each intent apart from the average user: (K, d), (d,), (N, d) -> (K, N).

    An item scores (normalised center - mean of the users' normalised pooled states) . item embedding. The raw
    center . item is high for the globally popular items under every center (so that all intents list the same
    items); subtracting the average user's direction leaves what is particular to the intent.
    """
    return (F.normalize(centers, dim=-1) - mean_state) @ items.T


@dataclass(frozen=True)
class IntentSpace:
    """A version's centers read with its calibration (module docstring), as the service, the health and the
    report read them: one owner of how a user is assigned and how an intent is described."""

    centers: torch.Tensor  # (K, d) raw, as the model holds them
    bias: torch.Tensor | None = None  # (K,) added to the cosines; None: the nearest center
    profiles: torch.Tensor | None = None  # (K, d) unit; None: an intent is described by its center

    def __post_init__(self) -> None:
        k, d = self.centers.shape
        if self.bias is not None and tuple(self.bias.shape) != (k,):
            raise ValueError(f"the intent bias has shape {tuple(self.bias.shape)}, the model has {k} intents")
        if self.profiles is not None and tuple(self.profiles.shape) != (k, d):
            raise ValueError(f"the intent profiles have shape {tuple(self.profiles.shape)}, the centers {(k, d)}")

    @property
    def k(self) -> int:
        return int(self.centers.shape[0])

    def to(self, device: torch.device | str) -> IntentSpace:
        return IntentSpace(self.centers.to(device), None if self.bias is None else self.bias.to(device),
                           None if self.profiles is None else self.profiles.to(device))

    def assign(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, d) pooled states -> (B,) intent ids."""
        return self.distribution(pooled)[1][:, 0]

    def distribution(
        self, pooled: torch.Tensor, top: int = 1, temperature: float = DEFAULT_TEMPERATURE
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(distances, ids, probabilities) of the top intents: intent_distribution with the bias."""
        return intent_distribution(pooled, self.centers, top, temperature, self.bias)

    def described(self) -> torch.Tensor:
        """(K, d) unit vectors that describe the intents: the profiles, else the normalised centers."""
        return self.profiles if self.profiles is not None else F.normalize(self.centers.float(), dim=-1)

    def characteristic_scores(self, mean_state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(K, N) how much each item sets each intent apart (characteristic_scores of the description)."""
        return characteristic_scores(self.described().float(), mean_state, items)


def characteristic_items(
    space: IntentSpace, mean_state: torch.Tensor | None, items: torch.Tensor, top: int, chunk: int = 65536
) -> torch.Tensor:
    """(K, top) 0-based item columns of each intent's most characteristic items, best first: by
    space.characteristic_scores, or by the description alone where the version records no mean state (as the
    service lists them). items (N, d) real item rows; scored `chunk` items at a time, so that a large catalog
    never holds a (K, N) matrix."""
    described = space.described().float()
    direction = described - mean_state.to(described) if mean_state is not None else described
    n = items.shape[0]
    top = min(top, n)
    best_v = torch.full((space.k, 0), float("-inf"))
    best_i = torch.zeros((space.k, 0), dtype=torch.long)
    for start in range(0, n, chunk):
        scores = direction @ items[start : start + chunk].float().to(direction.device).T  # (K, c)
        v, i = torch.topk(scores, k=min(top, scores.shape[1]), dim=1)
        best_v = torch.cat([best_v, v.cpu()], dim=1)
        best_i = torch.cat([best_i, i.cpu() + start], dim=1)
        keep = torch.topk(best_v, k=min(top, best_v.shape[1]), dim=1)
        best_v, best_i = keep.values, best_i.gather(1, keep.indices)
    return best_i
