"""ELCRec's losses as pure functions: tensors in, scalar tensors out."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from elcrec.model.intents import DEFAULT_TEMPERATURE, squared_distances


def next_item_bce(hidden: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with one negative a position, averaged over non-padding targets.

    hidden (B, t, d); pos, neg (B, t) item ids (pos 0 = no target); table (V, d).
    """
    is_target = pos > 0
    h = hidden[is_target]  # (n, d)
    pos_logits = (h * table[pos[is_target]]).sum(-1)
    neg_logits = (h * table[neg[is_target]]).sum(-1)
    # -log sigmoid(x) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x): stable where the reference adds 1e-24.
    return (F.softplus(-pos_logits) + F.softplus(neg_logits)).sum() / is_target.sum().clamp_min(1)


def next_item_softmax(
    hidden: torch.Tensor, pos: torch.Tensor, table: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy over every real item (rows 1..N), averaged over non-padding targets."""
    is_target = pos > 0
    logits = hidden[is_target] @ table[1:-1].T  # (n, N)
    return F.cross_entropy(logits, pos[is_target] - 1, label_smoothing=label_smoothing)


def next_item_sampled_softmax(
    hidden: torch.Tensor, pos: torch.Tensor, table: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of the target against M negatives shared by the batch (M,), a cheap full softmax."""
    is_target = pos > 0
    h = hidden[is_target]  # (n, d)
    targets = pos[is_target]
    pos_logits = (h * table[targets]).sum(-1, keepdim=True)  # (n, 1)
    neg_logits = (h @ table[negatives].T).masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([pos_logits, neg_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=h.device))


def elcm(z: torch.Tensor, centers: torch.Tensor, trade_off: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable clustering: pull every (normalised) sequence towards the centers, push centers apart.

    z (B, d) normalised, centers (K, d) normalised -> (loss, intent ids (B,)).
    """
    dist = squared_distances(z, centers)  # (B, K)
    pull = dist.mean()
    push = -squared_distances(centers, centers).mean()  # the reference keeps the zero diagonal
    return trade_off * (pull + push), dist.argmin(dim=1)


def sinkhorn(scores: torch.Tensor, eps: float = 0.05, iters: int = 3) -> torch.Tensor:
    """Soft assignments (B, K) of B rows to K intents, each row summing to 1 and each intent receiving B / K rows
    in all: the equipartition of SwAV (Caron et al. 2020), by alternate column and row scaling of exp(scores / eps)."""
    q = torch.exp((scores - scores.max()) / eps).double()  # double: exp of up to 2 / eps stays representable
    B, K = q.shape
    for _ in range(iters):
        q = q / (q.sum(0, keepdim=True) * K)
        q = q / (q.sum(1, keepdim=True) * B)
    return (q * B).to(scores.dtype)


def balanced_clustering(
    z: torch.Tensor, centers: torch.Tensor, weight: float, temperature: float = DEFAULT_TEMPERATURE, queue: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each (normalised) sequence pulled towards its own center, the users spread over all centers.

    Targets are the batch's balanced (Sinkhorn) assignments of the sequences to the centers, without gradient;
    the loss is their cross-entropy against softmax(z . centers / temperature). Unlike ELCM, whose pull is towards
    the mean of all centers, this moves each sequence and its center towards each other, and the equipartition
    keeps any center from taking every sequence. z (B, d) and centers (K, d) normalised -> (loss, intent ids (B,)).

    queue (Q, d): normalised states of earlier batches, assigned together with the batch (SwAV's queue) and
    otherwise unused. Alone, a batch of B <= K rows must give each center B / K of a row, so that a row's target is
    bound to whichever centers the other rows left over; over B + Q rows a center may hold several of the batch's.
    """
    scores = z @ centers.T  # (B, K) cosine similarities
    if queue is not None and len(queue):
        q = sinkhorn(torch.cat([scores.detach(), queue @ centers.detach().T]))[: len(z)]
    else:
        q = sinkhorn(scores.detach())
    loss = -(q * F.log_softmax(scores / temperature, dim=1)).sum(1).mean()
    return weight * loss, q.argmax(dim=1)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """NT-Xent between paired rows of a and b (B, m), plain dot products, positives a_i <-> b_i."""
    B = a.shape[0]
    sim_ab = a @ b.T / temperature
    eye = torch.eye(B, dtype=torch.bool, device=a.device)
    sim_aa = (a @ a.T / temperature).masked_fill(eye, float("-inf"))
    sim_bb = (b @ b.T / temperature).masked_fill(eye, float("-inf"))
    logits = torch.cat([torch.cat([sim_ab, sim_aa], 1), torch.cat([sim_bb, sim_ab.T], 1)], 0)  # (2B, 2B)
    labels = torch.arange(2 * B, device=a.device)
    return F.cross_entropy(logits, labels)


def with_prototypes(hidden: torch.Tensor, centers: torch.Tensor, mode: str) -> torch.Tensor:
    """Add (shift) or append (concat) each position's nearest center. (B, t, d) -> (B, t, d | 2d)."""
    B, t, d = hidden.shape
    flat = hidden.reshape(-1, d)
    nearest = centers[squared_distances(flat.detach(), centers.detach()).argmin(dim=1)].reshape(B, t, d)
    if mode == "shift":
        return hidden + nearest
    if mode == "concat":
        return torch.cat([hidden, nearest], dim=-1)
    raise ValueError(f"prototype must be 'shift' or 'concat', got {mode!r}")


def instance_contrastive(h1: torch.Tensor, h2: torch.Tensor, centers: torch.Tensor, mode: str) -> torch.Tensor:
    """NT-Xent between the two views' prototype-augmented, flattened sequences."""
    v1 = with_prototypes(h1, centers, mode).flatten(1)
    v2 = with_prototypes(h2, centers, mode).flatten(1)
    return nt_xent(v1, v2)


def intent_contrastive(p1: torch.Tensor, p2: torch.Tensor, centers: torch.Tensor, intents: torch.Tensor) -> torch.Tensor:
    """Each view's pooled state (B, d) against its sequence's intent center."""
    targets = centers[intents]
    return (nt_xent(p1, targets) + nt_xent(p2, targets)) / 2
