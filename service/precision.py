"""Serving in half precision (bf16/fp16), verified against fp32 rankings before a version is served.

A version loaded with ELCREC_PRECISION=bf16 or fp16 is encoded both ways on a fixed set of probe histories
(random known items, every length 1..T, a fixed seed): the share of each probe's exact top-10 items that the
half-precision model keeps: the share of probes whose top-10 list is identical, in order, must reach
ELCREC_PRECISION_MIN_IDENTICAL and the share that keep their intent ELCREC_PRECISION_MIN_INTENTS, else the version
is refused with those figures (and the served one stays). The mean share of top-10 items kept is reported too; it is
not the bar, since a list that swaps two neighbours keeps all ten items and still answers differently.
Retrieval scores stay in fp32: only the encoder runs in half precision.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch

from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PROBES = 256
TOP = 10


@dataclass(frozen=True)
class PrecisionCheck:
    precision: str
    probes: int
    top10_overlap: float  # mean share of the fp32 top-10 items kept
    top10_identical: float  # share of probes whose top-10 list is fp32's, in the same order
    intent_agreement: float  # share of probes assigned the same intent

    def passes(self, min_identical: float, min_intents: float) -> bool:
        return self.top10_identical >= min_identical and self.intent_agreement >= min_intents

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_histories(n_items: int, max_len: int, n: int = PROBES, seed: int = 0) -> torch.Tensor:
    """(n, max_len) left-padded histories of random item rows, lengths cycling through 1..max_len."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, n_items + 1, (n, max_len), generator=g)
    lengths = torch.arange(n) % max_len + 1
    ids[torch.arange(max_len)[None, :] < (max_len - lengths)[:, None]] = 0
    return ids


@torch.inference_mode()
def _rankings(
    model: ELCRec, ids: torch.Tensor, items: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = model(ids)
    top = torch.topk(hidden[:, -1].float() @ items.T, min(TOP, items.shape[0]), dim=1).indices
    intent = IntentSpace(model.intent_centers.float(), bias).assign(model.pool(hidden, ids).float())
    return top, intent


def to_precision(
    model: ELCRec, precision: str, bias: torch.Tensor | None = None
) -> tuple[ELCRec, PrecisionCheck | None]:
    """The model in `precision` (fp32: unchanged, no check) and how its rankings compare with fp32's; intents are
    assigned as the service assigns them, with the version's balancing bias (`bias`, (K,)) where it has one."""
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {', '.join(DTYPES)}, got {precision!r}")
    if precision == "fp32":
        return model, None
    device = model.item_embeddings.weight.device
    ids = probe_histories(model.cfg.n_items, model.cfg.max_len).to(device)
    items = model.item_table()[1:-1].detach().float()
    top32, intent32 = _rankings(model, ids, items, bias)
    low = copy.deepcopy(model).to(DTYPES[precision])
    top_low, intent_low = _rankings(low, ids, items, bias)
    kept = (top_low[:, :, None] == top32[:, None, :]).any(-1).float().mean().item()
    identical = (top_low == top32).all(dim=1).float().mean().item()
    same = (intent_low == intent32).float().mean().item()
    return low, PrecisionCheck(precision, len(ids), round(kept, 4), round(identical, 4), round(same, 4))
