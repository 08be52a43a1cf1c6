"""Full-ranking metrics: pure functions on score matrices."""

from __future__ import annotations

import torch

KS = (5, 10, 20)


def mask_scores(
    scores: torch.Tensor, seen_rows: torch.Tensor, seen_cols: torch.Tensor, protocol: str
) -> torch.Tensor:
    """Mask seen items in place: to 0 (reference) or -inf together with padding and mask rows (strict).

    scores (B, V); seen_rows/seen_cols: coordinates of the (user, item) pairs already seen.
    """
    if protocol == "reference":
        scores[seen_rows, seen_cols] = 0.0
    elif protocol == "strict":
        scores[seen_rows, seen_cols] = float("-inf")
        scores[:, 0] = float("-inf")
        scores[:, -1] = float("-inf")
    else:
        raise ValueError(f"protocol must be 'reference' or 'strict', got {protocol!r}")
    return scores


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target: how many items score strictly higher. (B, V), (B,) -> (B,)."""
    target_scores = scores.gather(1, targets[:, None])  # (B, 1)
    return (scores > target_scores).sum(dim=1)


def per_user(ranks: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, torch.Tensor]:
    """Each user's HIT@k and NDCG@k (U,) from 0-based target ranks."""
    ranks = ranks.to(torch.float64)
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        hit = ranks < k
        out[f"HIT@{k}"] = hit.double()
        out[f"NDCG@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2.0), 0.0)
    return out


def hit_ndcg(ranks: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Mean HIT@k and NDCG@k over users from 0-based target ranks."""
    return {name: values.mean().item() for name, values in per_user(ranks, ks).items()}


def standard_errors(ranks: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Standard error of each mean of `hit_ndcg` (per-user standard deviation / sqrt(users)): how far a score
    could move, for the same model, with another draw of users of the same kind."""
    n = len(ranks)
    return {name: (values.std() / n**0.5).item() if n > 1 else float("nan") for name, values in per_user(ranks, ks).items()}
