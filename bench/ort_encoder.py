"""The encoder exported to ONNX and run by ONNX Runtime on the CPU, for the benchmarks that time it against the
served TorchScript trace (bench/encoder_levers.py, bench/runtimes.py). onnxruntime and onnx are an optional extra
(`pip install -c constraints.txt -e '.[onnx]'`), not dependencies of the service: measured, not adopted
(docs/SERVING.md, "Levers, measured")."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from elcrec.model.encoder import Block, ELCRec, attention_mask
from elcrec.service.fused import FusedEncoder

LEVELS = ("basic", "all")  # ONNX Runtime's graph optimisation levels timed here (its default: all)
CONTRIB_ATTENTION = "MultiHeadAttention"  # ONNX Runtime's own operator (domain com.microsoft)


class _ContribAttention(torch.autograd.Function):
    """Attention over packed q, k, v (B, t, d) with the model's additive mask (B, 1, t, t): computed by torch,
    exported as ONNX Runtime's MultiHeadAttention with the mask as its attention_bias."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                heads: int) -> torch.Tensor:
        B, t, d = q.shape
        q, k, v = (x.view(B, t, heads, -1).transpose(1, 2) for x in (q, k, v))  # each (B, h, t, dh)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(B, t, d)

    @staticmethod
    def symbolic(g: Any, q: Any, k: Any, v: Any, mask: Any, heads: int) -> Any:
        # Its inputs 4 and 5 (bias, key_padding_mask) stay empty: _contrib_inputs moves the mask to input 6.
        out = g.op(f"com.microsoft::{CONTRIB_ATTENTION}", q, k, v, mask, num_heads_i=heads)
        out.setType(q.type())  # (B, t, d) like the query: the exporter cannot infer an operator it does not know
        return out


class ContribAttentionEncoder(nn.Module):
    """FusedEncoder's function with each layer's attention as one _ContribAttention (for export only)."""

    def __init__(self, encoder: FusedEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.cfg = encoder.cfg

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e, m = self.encoder, self.encoder.model
        t = ids.shape[1]
        x = m.norm(m.item_embeddings(ids) + m.position_embeddings.weight[self.cfg.max_len - t :])  # (B, t, d)
        mask = attention_mask(ids).to(x.dtype)  # (B, 1, t, t)
        real = (ids > 0).unsqueeze(-1).to(x.dtype) if self.cfg.mix_alpha > 0 else None
        for block, qkv in zip(cast(list[Block], list(m.blocks)), cast(list[nn.Linear], list(e.qkv)), strict=True):
            a = block.attention
            q, k, v = qkv(x).split(self.cfg.d, dim=-1)
            h = a.norm(a.dense(_ContribAttention.apply(q, k, v, mask, self.cfg.n_heads)) + x)
            if block.mix_alpha > 0:
                h = block.mix_alpha * block.filter(x, real) + (1.0 - block.mix_alpha) * h
            x = block.ffn(h)
        return x


def _contrib_inputs(path: Path) -> None:
    """The exported MultiHeadAttention nodes' mask moved from input 4 to input 6 (attention_bias), inputs 4 and 5
    (the projection bias, a key padding mask) left empty: the exporter cannot write an empty input itself."""
    import onnx

    graph = onnx.load(str(path))
    for node in graph.graph.node:
        if node.op_type == CONTRIB_ATTENTION:
            q, k, v, mask = node.input
            del node.input[:]
            node.input.extend([q, k, v, "", "", mask])
    onnx.save(graph, str(path))


def onnx_encoder(model: ELCRec | FusedEncoder, threads: int = 1, level: str = "all", transformer_fusions: bool = False,
                 contrib_attention: bool = False) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """`model` (item ids (B, t) -> hidden states (B, t, d)) exported to ONNX (dynamic batch and length) and run by an
    ONNX Runtime CPU session with `threads` intra-op threads (1: on the calling thread) at graph optimisation
    `level`. With `transformer_fusions`, onnxruntime.transformers' BERT fusions are applied to the graph first
    (LayerNorm, SkipLayerNorm, BiasGelu; attention with this model's causal padding mask is not among the patterns it
    fuses); with `contrib_attention` (a FusedEncoder only), each layer's attention is exported as ONNX Runtime's
    fused MultiHeadAttention operator. None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    exported: nn.Module = model
    if contrib_attention:
        if not isinstance(model, FusedEncoder):
            raise ValueError("contrib_attention exports a FusedEncoder (its packed query, key and value)")
        exported = ContribAttentionEncoder(model).eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if level == "all"
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    example = torch.ones(2, model.cfg.max_len, dtype=torch.long)
    with tempfile.TemporaryDirectory(prefix="elcrec-onnx-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "encoder.onnx"
        torch.onnx.export(exported, (example,), str(path), input_names=["ids"], output_names=["hidden"],
                          dynamic_axes={"ids": {0: "B", 1: "T"}, "hidden": {0: "B", 1: "T"}}, opset_version=17,
                          dynamo=False, custom_opsets={"com.microsoft": 1} if contrib_attention else None)
        if contrib_attention:
            _contrib_inputs(path)
        if transformer_fusions:
            from onnxruntime.transformers import optimizer

            # Its shape inference (imported as the top-level module symbolic_shape_infer) warns that it cannot bound
            # the position slice of a dynamic length: harmless here.
            logging.getLogger("symbolic_shape_infer").setLevel(logging.ERROR)
            # opt_level 0: the fusions only; the session applies its own graph optimisations after them
            fused = optimizer.optimize_model(str(path), model_type="bert", num_heads=model.cfg.n_heads,
                                             hidden_size=model.cfg.d, opt_level=0)
            fused.save_model_to_file(str(path))
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda ids: torch.from_numpy(session.run(None, {"ids": ids.numpy()})[0])
