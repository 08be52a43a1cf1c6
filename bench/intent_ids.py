"""Do intent ids survive a retrain? Events from a share of the users, one warm-started `elcrec retrain`, and the
share of users whose intent id did not change.

    python -m bench.intent_ids --artifacts STORE --data FILE [--share 0.01] [--epochs 2] [--out FILE.json]

The store's CURRENT version is copied to a scratch store; a redis-server of its own receives, for a random `share`
of the users, an event each (the user's held-out test item and a random item, as new interactions). Then the real
retraining job runs (`elcrec retrain`, warm-started from the version, `--epochs` at most, the gate open), which
matches the new centers to the old ones (training/intent_ids.py) and reports how many users kept their intent id.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench import write_json
from model.artifact import CURRENT, resolve
from model.events import EVENTS_STREAM, encode_event
from training.data import read_interactions

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(
    store: Path, data_path: Path, share: float, epochs: int, seed: int, lr: float | None = None
) -> dict[str, Any]:
    version = resolve(store)
    data = read_interactions(data_path)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(data.n_users, size=max(1, round(share * data.n_users)), replace=False)
    with tempfile.TemporaryDirectory(prefix="elcrec-intent-ids-") as tmp:
        scratch = Path(tmp) / "store"
        scratch.mkdir()
        shutil.copytree(version, scratch / version.name)
        (scratch / CURRENT).write_text(version.name + "\n")
        port = free_port()
        server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                                  stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            db = redis.Redis.from_url(url)
            for _ in range(100):
                try:
                    db.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            for u in chosen.tolist():
                items = [str(int(data.sequence(u)[-1])), str(int(rng.integers(1, data.n_items + 1)))]
                db.xadd(EVENTS_STREAM, encode_event(data.users[u], items))
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "elcrec", "retrain", "--artifacts", str(scratch), "--data", str(data_path),
                 "--redis", url, "--epochs", str(epochs), "--gate-tolerance", "1.0", "--device", "cpu",
                 *(["--lr", str(lr)] if lr else [])],
                capture_output=True, text=True, cwd=ROOT,
            )
            seconds = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait()
    if done.returncode != 0:
        raise SystemExit(f"retrain failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    return {
        "version": version.name, "users_with_events": len(chosen), "share": share, "epochs": epochs, "lr": lr,
        "status": summary["status"], "intents": summary["intents"], "gate": summary["gate"],
        "retrain_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True, help="store (its CURRENT) or a version directory")
    parser.add_argument("--data", type=Path, required=True, help="the interaction file the model was trained on")
    parser.add_argument("--share", type=float, default=0.01, help="share of the users with new events")
    parser.add_argument("--epochs", type=int, default=2, help="most epochs of the warm-started retrain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None, help="the retrain's learning rate (default: the model's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.artifacts, args.data, args.share, args.epochs, args.seed, args.lr)
    write_json(result, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
