"""This CPU's measured peak: matrix products in fp32, bf16 and int8 on one thread, and memory bandwidth.

    python -m bench.peak [--threads 1] [--seconds 0.3] [--out FILE]

The ceiling against which the serving path's parts are compared (docs/SERVING.md "Where the time goes"):
square 512 products, and the shapes of one served batch of 32 histories at length 50 and d 64 (the encoder's
projections and feed-forward, 1600 rows) and of its retrieval (32 vectors against 11,925 items). bf16 through
torch.matmul (oneDNN: AVX-512 BF16 or AMX where the CPU has them); int8 through torch._int_mm (int8 in, int32
out). Memory bandwidth: a 256 MiB copy. Each figure is the best of repeated runs of about --seconds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import write_json

SHAPES = {  # name: (m, k, n) for (m, k) @ (k, n)
    "square 512": (512, 512, 512),
    "encoder q/k/v/out (1600x64 @ 64x64)": (1600, 64, 64),
    "encoder ffn in (1600x64 @ 64x256)": (1600, 64, 256),
    "encoder ffn out (1600x256 @ 256x64)": (1600, 256, 64),
    "retrieval (32x64 @ 64x11925)": (32, 64, 11925),
}


def best_seconds(fn: Callable[[], Any], seconds: float) -> float:
    """The fastest of repeated calls, each timed over enough repetitions to take about a millisecond."""
    fn()
    t = time.perf_counter()
    fn()
    reps = max(1, int(1e-3 / max(time.perf_counter() - t, 1e-7)))
    best = float("inf")
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def matmul_gflops(m: int, k: int, n: int, dtype: str, seconds: float) -> float:
    g = torch.Generator().manual_seed(0)
    if dtype == "int8":
        a = torch.randint(-127, 128, (m, k), generator=g, dtype=torch.int8)
        b = torch.randint(-127, 128, (k, n), generator=g, dtype=torch.int8)
        # torch._int_mm wants m > 16 and k, n multiples of 8
        fn: Callable[[], Any] = lambda: torch._int_mm(a, b)  # noqa: E731
    else:
        kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        a, b = torch.randn(m, k, generator=g).to(kind), torch.randn(k, n, generator=g).to(kind)
        fn = lambda: torch.matmul(a, b)  # noqa: E731
    return 2 * m * k * n / best_seconds(fn, seconds) / 1e9


def copy_gbytes(seconds: float) -> float:
    src = torch.ones(64 * 1024 * 1024)  # 256 MiB
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / best_seconds(lambda: dst.copy_(src), seconds) / 1e9  # read + write


def measure(threads: int, seconds: float) -> dict[str, Any]:
    torch.set_num_threads(threads)
    table = {
        name: {dtype: round(matmul_gflops(*shape, dtype, seconds), 1) for dtype in ("fp32", "bf16", "int8")}
        for name, shape in SHAPES.items()
    }
    return {
        "threads": threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "gflops": table,
        "copy_gb_per_s": round(copy_gbytes(seconds), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.3, help="per figure")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.threads, args.seconds)
    print(f"{'GFLOP/s, ' + str(args.threads) + ' thread(s)':<40} {'fp32':>8} {'bf16':>8} {'int8':>8}")
    for name, row in result["gflops"].items():
        print(f"{name:<40} {row['fp32']:8.1f} {row['bf16']:8.1f} {row['int8']:8.1f}")
    print(f"copy bandwidth: {result['copy_gb_per_s']} GB/s ({result['cpu_capability']}, torch {result['torch']})")
    write_json(result, args.out)


if __name__ == "__main__":
    main()
