"""The encoder's levers side by side: time a batch and agreement with fp32 on every test user.

    python -m bench.encoder_levers --artifacts STORE --data FILE [--out FILE]

Variants, each TorchScript-traced as the service serves them (service/bundle.py): the model's own forward in fp32
(the service before service/fused.py), the fused encoder in fp32 (served), the fused encoder in bf16, and int8
dynamic quantisation of the linear layers (torch.ao); then, when onnxruntime is installed (`pip install -c
constraints.txt -e '.[onnx]'`), the fused encoder exported to ONNX and run by ONNX Runtime on one thread (the
calling one), at its basic and at all graph optimisations, with onnxruntime.transformers' fusions first, and with
each layer's attention as ONNX Runtime's own MultiHeadAttention operator (bench/ort_encoder.py). Time: CPU time of
one thread per batch of B histories at length T (lengths 1..20 left-padded, as the service runs "pooling all"
models), the best of repeats with the variants taking turns, so that other processes on the machine disturb it less
than wall time would. Agreement, on every user of --data (the history without its last item, as in the test
protocol): the share whose top-10 items (over the whole catalog) are identical, in order, to fp32's, and whose
assigned intent is the same. The bar for serving a variant: 99.5% and 99%.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import write_json
from bench.ort_encoder import onnx_encoder
from elcrec.model.artifact import load_artifact
from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace
from elcrec.service.fused import FusedEncoder

BATCHES = (1, 8, 32)
Encoder = Callable[[torch.Tensor], torch.Tensor]


def variants(model: ELCRec) -> dict[str, Encoder]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantised = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
        half = copy.deepcopy(model).to(torch.bfloat16)
        found = {
            "model's forward, fp32 (before)": model,
            "fused, fp32 (served)": FusedEncoder(model).eval(),
            "fused, bf16": FusedEncoder(half).eval(),
            "int8 dynamic linears": quantised,
        }
        example = torch.ones(2, model.cfg.max_len, dtype=torch.long)
        with torch.inference_mode():
            out: dict[str, Encoder] = {name: torch.jit.trace(m, example, check_trace=False) for name, m in found.items()}
    for name, level, fusions, contrib in (("onnxruntime fp32, basic optimisations", "basic", False, False),
                                          ("onnxruntime fp32, all optimisations", "all", False, False),
                                          ("onnxruntime fp32, transformer fusions", "all", True, False),
                                          ("onnxruntime fp32, MultiHeadAttention", "all", False, True)):
        encoder = onnx_encoder(FusedEncoder(model).eval(), threads=1, level=level, transformer_fusions=fusions,
                               contrib_attention=contrib)
        if encoder is None:
            print("onnxruntime is not installed: pip install -c constraints.txt -e '.[onnx]' to time it", flush=True)
            break
        out[name] = encoder
    return out


def batch_ms(encoders: dict[str, Encoder], ids: torch.Tensor, rounds: int = 15) -> dict[str, float]:
    """Each encoder's best CPU time for a batch, the encoders taking turns (5 calls each a turn), so that other
    load on the machine, which comes and goes, falls on all of them alike."""
    best = dict.fromkeys(encoders, float("inf"))
    with torch.inference_mode():
        for encoder in encoders.values():
            for _ in range(3):
                encoder(ids)
        for _ in range(rounds):
            for name, encoder in encoders.items():
                t = time.thread_time()
                for _ in range(5):
                    encoder(ids)
                best[name] = min(best[name], (time.thread_time() - t) / 5 * 1e3)
    return best


def test_histories(data: Path, rows: dict[str, int], max_len: int) -> list[list[int]]:
    out = []
    for line in data.read_text().splitlines():
        known = [rows[i] for i in line.split()[1:-1] if i in rows][-max_len:]
        if known:
            out.append(known)
    return out


@torch.inference_mode()
def rankings(encoder: Encoder, model: ELCRec, space: IntentSpace, histories: list[list[int]]
             ) -> tuple[torch.Tensor, torch.Tensor]:
    items = model.item_table()[1:-1].float()
    T = model.cfg.max_len
    tops, intents = [], []
    for s in range(0, len(histories), 512):
        chunk = histories[s : s + 512]
        ids = torch.zeros(len(chunk), T, dtype=torch.long)
        for i, h in enumerate(chunk):
            ids[i, T - len(h) :] = torch.tensor(h)
        hidden = encoder(ids)
        tops.append(torch.topk(hidden[:, -1].float() @ items.T, 10, dim=1).indices)
        intents.append(space.assign(model.pool(hidden, ids).float()))
    return torch.cat(tops), torch.cat(intents)


def measure(store: Path, data: Path) -> dict[str, Any]:
    torch.set_num_threads(1)
    art = load_artifact(store)
    model = art.model.eval()
    space = IntentSpace(model.intent_centers.detach().float(), art.intents.bias)
    rows = {item: r for r, item in enumerate(art.item_ids) if item is not None}
    histories = test_histories(data, rows, model.cfg.max_len)
    g = torch.Generator().manual_seed(0)
    T = model.cfg.max_len
    found = variants(model)
    top32, intent32 = rankings(found["model's forward, fp32 (before)"], model, space, histories)
    out: dict[str, Any] = {"users": len(histories), "variants": {name: {"batch_ms": {}} for name in found}}
    for b in BATCHES:
        ids = torch.randint(1, model.cfg.n_items + 1, (b, T), generator=g)
        for i in range(b):
            ids[i, : T - (i % 20 + 1)] = 0
        for name, ms in batch_ms(found, ids).items():
            out["variants"][name]["batch_ms"][b] = round(ms, 3)
    for name, encoder in found.items():
        top, intent = rankings(encoder, model, space, histories)
        row = out["variants"][name]
        row["top10_identical"] = round((top == top32).all(1).float().mean().item(), 4)
        row["intent_identical"] = round((intent == intent32).float().mean().item(), 4)
        print(f"{name:<39} " + "  ".join(f"B={b}: {ms:6.2f} ms" for b, ms in row["batch_ms"].items())
              + f"  top-10 identical {row['top10_identical']:.2%}, intent {row['intent_identical']:.2%}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the model's data file (its users)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    write_json(measure(args.artifacts, args.data), args.out)


if __name__ == "__main__":
    main()
