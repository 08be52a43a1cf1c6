"""One training epoch on a benchmark file with its preset: center init + training + validation.

    python -m bench.epoch_speed --data ../shared/data/Beauty.txt [--preset Beauty] [--improved] [--pooling real|all]
                                [--batches length|random] [--steps N] [--json]

--improved: the improved preset (training.config.IMPROVED) on top of the paper's; --steps N: time N training
steps after 5 warm-up steps (milliseconds a step, and the epoch's training time they project) instead of whole
epochs, for a quick comparison of two versions of the code.

The authors' code takes 65-78 s for this epoch on Beauty on the project's 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from elcrec.model.config import ModelConfig
from elcrec.training.config import TrainConfig, preset_settings
from elcrec.training.data import read_interactions
from elcrec.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--preset", default=None, help="default: the data file's stem")
    parser.add_argument("--pooling", choices=["real", "all"], default="real")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--improved", action="store_true", help="the improved preset on top of the paper's")
    parser.add_argument("--batches", choices=["length", "random"], default="length",
                        help="with pooling real: batches of similar length, or uniform ones run in length groups")
    parser.add_argument("--steps", type=int, default=0, help="time N training steps instead of whole epochs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    preset = args.preset or args.data.stem
    model_kw, train_kw = preset_settings(preset, improved=args.improved)
    data = read_interactions(args.data)
    mcfg = ModelConfig(n_items=data.n_items, pooling=args.pooling, **model_kw)
    tcfg = TrainConfig(**train_kw, epochs=args.epochs, bucket=args.pooling == "real", batches=args.batches)
    trainer = Trainer(mcfg, tcfg, data, log=lambda _: None, progress=False)
    if args.steps:
        what = f"{args.data.name} preset {preset}{' improved' if args.improved else ''}, {args.batches} batches"
        time_steps(trainer, args.steps, what)
        return
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    trainer.init_centers()
    init_s = time.perf_counter() - t0
    epochs = []
    for _ in range(args.epochs):
        t1 = time.perf_counter()
        record = trainer.run_epoch()
        epochs.append({"train_s": record["train_s"], "valid_s": round(time.perf_counter() - t1 - record["train_s"], 2),
                       "valid_ndcg20": record["valid"]["NDCG@20"]})
    first = round(init_s + epochs[0]["train_s"] + epochs[0]["valid_s"], 2)
    cpu_s = round(time.process_time() - cpu0, 2)
    result = {
        "data": args.data.name, "preset": preset, "pooling": args.pooling, "center_init_s": round(init_s, 2),
        "epochs": epochs, "first_epoch_total_s": first, "process_cpu_s": cpu_s,
        "load_avg_1min_after": round(os.getloadavg()[0], 2), "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.data.name} preset {preset}, pooling {args.pooling}, {torch.get_num_threads()} threads: "
              f"center init {init_s:.1f} s + train {epochs[0]['train_s']:.1f} s + validation "
              f"{epochs[0]['valid_s']:.1f} s = {first:.1f} s for the first epoch (process CPU {cpu_s:.1f} s, "
              f"load average {os.getloadavg()[0]:.1f})")


def step_times(trainer: Trainer, steps: int, warmup: int = 5) -> dict[str, float | int]:
    """Milliseconds a training step over `steps` steps after `warmup` (centers initialised first), and the epoch's
    training time they project; the device is synchronised around the timed steps."""
    trainer.init_centers()
    trainer.model.train()
    batches = trainer.batches()
    if len(batches) < steps + warmup:
        raise SystemExit(f"--steps {steps}: the epoch has only {len(batches)} batches ({warmup} more are warm-up)")
    for idx in batches[:warmup]:
        trainer.step(idx)
    sync = torch.cuda.synchronize if str(trainer.device).startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for idx in batches[warmup : warmup + steps]:
        trainer.step(idx)
    sync()
    elapsed = time.perf_counter() - t0
    ms = elapsed / steps * 1000
    rows = sum(len(idx) for idx in batches[warmup : warmup + steps])
    return {"steps": steps, "ms_per_step": round(ms, 3), "sequences_per_s": round(rows / elapsed, 1),
            "epoch_batches": len(batches), "projected_epoch_train_s": round(ms * len(batches) / 1000, 2)}


def time_steps(trainer: Trainer, steps: int, what: str) -> None:
    got = step_times(trainer, steps)
    print(f"{what}, {torch.get_num_threads()} threads: {got['ms_per_step']:.0f} ms a step over {steps} steps, so "
          f"{got['projected_epoch_train_s']:.0f} s of training for the epoch's {got['epoch_batches']} batches "
          f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
