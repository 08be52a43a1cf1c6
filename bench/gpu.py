"""The GPU figures in one command: training speed and the serving path on one device, written as one JSON.

    python -m bench.gpu [--device auto|cpu|cuda] [--data FILE | --synthetic USERS] [--artifacts STORE]
                        [--preset NAME] [--quick] [--out FILE.json]

What it measures, in order, on --device:

  1. training: the data set's preset (the paper's; --preset, default the data file's stem, Beauty for others),
     centers initialised, then --steps training steps timed after 5 warm-up steps (bench/epoch_speed.py's
     measurement): milliseconds a step, sequences a second and the epoch's projected training time;
  2. serving: the service's bundle of a version in fp32, bf16 and fp16, with FAISS "Flat" on the host and the
     exact "torch" top-k on the device (bench/gpu_path.py's measurement): batch latency at 1, 32 and 256 queries,
     and how much of fp32's top-10 and intents each setting keeps on the test users. The version is --artifacts'
     CURRENT (its data: --data), else the model just trained for part 1, written to a temporary store.

The machine is recorded beside the figures: device name and memory, torch, CUDA and cuDNN versions, threads.
--data defaults to Beauty.txt in the shared data (ELCREC_SHARED, else shared/ beside or inside the checkout);
--synthetic USERS makes a random data set instead (for a run anywhere, such as the CPU test in CI). --quick: fewer
steps, users and repeats, for a figure in a minute or two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import write_json
from bench.epoch_speed import step_times
from bench.gpu_path import BATCHES, INDEXES, PRECISIONS, measure, queries_of
from elcrec.model.artifact import ArtifactError, Store, read_manifest, resolve
from elcrec.model.config import ModelConfig
from elcrec.model.device import pick_device
from elcrec.model.manifest import ManifestInfo
from elcrec.training.config import PRESETS, TrainConfig, preset_settings
from elcrec.training.data import DataError, Interactions, eval_split, read_interactions
from elcrec.training.export import item_ids_for, popular_items
from elcrec.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
# The shared folder: ELCREC_SHARED, else beside the checkout, else inside it (where a device machine's copy has it).
SHARED = [Path(os.environ["ELCREC_SHARED"])] if "ELCREC_SHARED" in os.environ else [REPO.parent / "shared", REPO / "shared"]
DEFAULT_DATA = next((p for p in (s / "data" / "Beauty.txt" for s in SHARED) if p.is_file()),
                    SHARED[0] / "data" / "Beauty.txt")


def say(line: str) -> None:
    """Progress, on stderr: stdout is the JSON's where there is no --out."""
    print(line, file=sys.stderr, flush=True)


def machine(device: torch.device) -> dict[str, Any]:
    """Where the figures come from."""
    out: dict[str, Any] = {
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported())
    else:
        out["name"] = out["cpu"]
    return out


def synthetic(users: int, items: int, seed: int = 0) -> Interactions:
    """Random users of 5..30 interactions over `items` items, a few popular ones drawn more often."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** 0.8
    weights /= weights.sum()
    seqs = [rng.choice(np.arange(1, items + 1), size=int(rng.integers(5, 31)), p=weights) for _ in range(users)]
    return Interactions.from_sequences([f"u{u}" for u in range(users)], seqs, items, source="synthetic")


def training(data: Interactions, preset: str, device: torch.device, steps: int, intents: int | None,
             batch_size: int | None) -> tuple[Trainer, dict[str, Any]]:
    model_kw, train_kw = preset_settings(preset)
    if intents is not None:
        model_kw["n_intents"] = intents
    if batch_size is not None:
        train_kw["batch_size"] = batch_size
    mcfg = ModelConfig(n_items=data.n_items, pooling="real", **model_kw)
    tcfg = TrainConfig(**train_kw, epochs=1, bucket=True)
    trainer = Trainer(mcfg, tcfg, data, device=str(device), log=lambda _: None, progress=False)
    started = time.perf_counter()
    timed = step_times(trainer, steps)
    result = {"preset": preset, "n_layers": mcfg.n_layers, "d": mcfg.d, "max_len": mcfg.max_len,
              "n_intents": mcfg.n_intents, "batch_size": tcfg.batch_size, **timed,
              "wall_s": round(time.perf_counter() - started, 2)}
    if device.type == "cuda":
        result["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return trainer, result


def serving(version: Path, data: Interactions, device: torch.device, users: int, repeats: int,
            batches: tuple[int, ...]) -> dict[str, Any]:
    max_len = read_manifest(version).model_config.max_len
    test = eval_split(data, max_len, "test")
    queries = queries_of(test.inputs, users)
    rows = measure(version, device, queries, test.targets[:users], repeats, PRECISIONS, INDEXES, batches,
                   log=say)
    return {"version": str(version), "users": len(queries), "results": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA where present), cpu or cuda[:N]")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help=f"interaction file (default {DEFAULT_DATA})")
    source.add_argument("--synthetic", type=int, metavar="USERS", help="a random data set of USERS users instead")
    parser.add_argument("--items", type=int, default=500, help="items of the --synthetic data set")
    parser.add_argument("--artifacts", type=Path, help="serve this store's CURRENT version (trained on --data)")
    parser.add_argument("--preset", help="training preset (default: the data file's stem, else Beauty)")
    parser.add_argument("--intents", type=int, help="K instead of the preset's (a small data set needs fewer)")
    parser.add_argument("--batch-size", type=int,
                        help="training batch size instead of the preset's (256; --synthetic: enough batches for the steps)")
    parser.add_argument("--steps", type=int, help="timed training steps (default 50; --quick: 5)")
    parser.add_argument("--users", type=int, help="test users for the serving figures (default 2000; --quick: 200)")
    parser.add_argument("--repeats", type=int, help="timed calls per batch size (default 20; --quick: 3)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, users and repeats")
    parser.add_argument("--out", type=Path, help="write the JSON here (default: print it)")
    args = parser.parse_args()
    steps = args.steps or (5 if args.quick else 50)
    users = args.users or (200 if args.quick else 2000)
    repeats = args.repeats or (3 if args.quick else 20)
    try:
        device = torch.device(pick_device(args.device))
    except ValueError as exc:
        parser.error(str(exc))
    if args.synthetic is not None:
        if args.synthetic < 20 or args.items < 20:
            parser.error("--synthetic needs at least 20 users and --items at least 20")
        data, name = synthetic(args.synthetic, args.items), f"synthetic {args.synthetic} users, {args.items} items"
    else:
        path = args.data or DEFAULT_DATA
        if not path.is_file():
            parser.error(f"no data file {path} (give --data FILE or --synthetic USERS)")
        try:
            data, name = read_interactions(path), path.name
        except DataError as exc:
            parser.error(str(exc))
    version: Path | None = None
    if args.artifacts is not None:  # checked before the training, which takes a while
        if args.synthetic is not None:
            parser.error("--artifacts needs the --data its version was trained on, not --synthetic")
        try:
            version = resolve(args.artifacts)
            n_items = read_manifest(version).n_items
        except (ArtifactError, OSError, KeyError, ValueError) as exc:
            parser.error(f"--artifacts {args.artifacts}: {exc}")
        if n_items != data.n_items:
            parser.error(f"--data {name} has {data.n_items} items, the version {version.name} {n_items}: "
                         "give the data it was trained on")
    preset = args.preset or (args.data.stem if args.data and args.data.stem in PRESETS else "Beauty")
    if preset not in PRESETS:
        parser.error(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    intents = args.intents if args.intents is not None else (
        min(PRESETS[preset][0]["n_intents"], max(2, data.n_users // 8)) if args.synthetic is not None else None)

    started = time.perf_counter()
    say(f"training: {name}, preset {preset}, {steps} steps on {device}")
    batch_size = args.batch_size if args.batch_size is not None else (
        min(256, max(2, data.n_users // (steps + 5))) if args.synthetic is not None else None)
    trainer, train = training(data, preset, device, steps, intents, batch_size)
    say(f"training: {train['ms_per_step']:.1f} ms a step, {train['sequences_per_s']:.0f} sequences/s")
    with tempfile.TemporaryDirectory(prefix="elcrec-gpu-") as tmp:
        if version is None:  # the model just trained (a few steps: the timings, not the rankings, are the point)
            model = trainer.model.eval()
            ids = item_ids_for(data, model.cfg.n_items)
            info = ManifestInfo(popular_items=tuple(popular_items(data, ids)))
            version = Store(Path(tmp) / "store").write_version(model.cpu(), ids, info)
        serve = serving(version, data, device, users, repeats, BATCHES)
    result = {"data": name, "device": str(device), "quick": args.quick, "machine": machine(device),
              "training": train, "serving": serve, "wall_s": round(time.perf_counter() - started, 1)}
    if args.out is None:
        print(json.dumps(result, indent=2))
    else:
        write_json(result, args.out)
        say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
