"""Small-batch CPU inference runtimes side by side, on one model's encoder at full length.

    python -m bench.runtimes --artifacts STORE [--threads 1] [--compile] [--out docs/bench/runtimes.json]

Times the encoder (item ids (B, max_len) -> hidden states) as eager torch, as the TorchScript trace the service
uses (service/bundle.py), with torch.compile (--compile: about 30 s to compile each new shape family), and with
ONNX Runtime when `onnxruntime` is installed (not a dependency of the product). Inputs are left-padded Toys-like
histories (10 real items in 50 positions: reference pooling runs over all positions). Each runtime's largest
difference from eager torch is reported beside its time.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.ort_encoder import onnx_encoder
from elcrec.model.artifact import load_artifact

BATCHES = (1, 4, 16, 32)


def timed(run: Callable[[], Any], repeats: int) -> float:
    for _ in range(5):
        run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_artifact(args.artifacts).model.eval()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(0)

    def ids_for(b: int) -> torch.Tensor:
        ids = torch.randint(1, cfg.n_items + 1, (b, cfg.max_len), generator=gen)
        ids[:, : cfg.max_len - 10] = 0
        return ids

    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runtimes: dict[str, Callable[[torch.Tensor], Any]] = {
            "eager": model, "torchscript": torch.jit.trace(model, ids_for(4))
        }
        if args.compile:
            runtimes["torch.compile"] = torch.compile(model, dynamic=True)
    ort_run = onnx_encoder(model, args.threads)
    rows: list[dict[str, Any]] = []
    for b in BATCHES:
        ids = ids_for(b)
        with torch.inference_mode():
            reference = model(ids).numpy()
            for name, run in runtimes.items():
                diff = float(np.abs(run(ids).numpy() - reference).max())
                rows.append({"runtime": name, "batch": b, "ms": timed(lambda run=run, ids=ids: run(ids), args.repeats), "max_diff": diff})
        if ort_run is not None:
            diff = float(np.abs(ort_run(ids).numpy() - reference).max())
            rows.append({"runtime": "onnxruntime", "batch": b, "ms": timed(lambda ids=ids: ort_run(ids), args.repeats),
                         "max_diff": diff})
    for r in rows:
        print(f"{r['runtime']:<14} B={r['batch']:<3} {r['ms']:7.2f} ms  max diff from eager {r['max_diff']:.1e}")
    if ort_run is None:
        print("onnxruntime is not installed: pip install onnxruntime to time it")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"model": {"n_layers": cfg.n_layers, "d": cfg.d, "max_len": cfg.max_len, "pooling": cfg.pooling},
                  "threads": args.threads, "torch": torch.__version__, "rows": rows}
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
