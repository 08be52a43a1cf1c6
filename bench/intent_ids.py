"""Do users keep their intent id across a retrain, as the service shows it? Measured black-box, as an operator would.

    python -m bench.intent_ids --artifacts STORE --data FILE [--users 2000] [--share 0.01] [--epochs 2]
        [--code DIR] [--workdir DIR] [--out FILE.json]

1. The store's CURRENT version is copied to a scratch store (under --workdir, kept, or a temporary folder).
2. A redis-server of its own holds every user's history as the service keeps it (the last T items of the user's
   line in FILE under the service's history key; written directly, since posting them as events would also put
   them into the events stream that the job folds into the data a second time).
3. `elcrec serve` runs as a real HTTP server on that store and Redis; `GET /v1/users/{id}/intent` for `--users`
   random users.
4. `POST /v1/users/{id}/events` for a random `--share` of all users: each user's held-out test item and a random
   item, as new interactions.
5. `elcrec retrain --epochs E` with the job's defaults otherwise (its gate included), on the same Redis.
6. `POST /v1/admin/reload` (ELCREC_ADMIN_TOKEN); the service must then serve the published version.
7. The same users' intents again: the share whose top intent id is the same, of all of them and of those without
   events. Beside it: the job's summary (its `intents` entry, the gate's NDCG@10) and both versions' intent health
   on the test users (their manifests' `intent_health`).

--code DIR runs the service and the job from another checkout (its code on PYTHONPATH), so that the same bench
measures the job before and after a change on copies of the same store. One thread a process.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from bench import write_json
from bench.harness import free_port, start_service, stop_processes, wait_until
from elcrec.model.artifact import Store, resolve
from elcrec.model.events import SINGLE
from elcrec.training.data import Interactions, read_interactions

ROOT = Path(__file__).resolve().parents[1]


def child_env(code: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELCREC_")}
    return {**env, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def wait_for_redis(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-server at {url} did not start") from None
            time.sleep(0.05)


def seed_histories(url: str, data: Interactions, max_len: int) -> None:
    """Every user's history under the service's key, oldest first, capped as the service caps it."""
    db = redis.Redis.from_url(url)
    pipe = db.pipeline(transaction=False)
    for u in range(data.n_users):
        key = SINGLE.history_key(data.users[u])
        pipe.delete(key)
        pipe.rpush(key, *[str(int(i)) for i in data.sequence(u)[-max_len:]])
        if u % 1000 == 999:
            pipe.execute()
    pipe.execute()
    db.close()


def read_intents(client: httpx.Client, users: list[str]) -> tuple[dict[str, int], set[str]]:
    """Each user's top intent id, and the model versions that answered."""
    ids, versions = {}, set()
    for user in users:
        r = client.get(f"/v1/users/{user}/intent")
        r.raise_for_status()
        body = r.json()
        ids[user] = int(body["intent"]["id"])
        versions.add(body["model_version"])
    return ids, versions


def measure(
    store: Path, data_path: Path, users: int, share: float, epochs: int, seed: int, code: Path, workdir: Path,
) -> dict[str, Any]:
    version = resolve(store)
    data = read_interactions(data_path)
    rng = np.random.default_rng(seed)
    read_users = [data.users[u] for u in rng.choice(data.n_users, size=min(users, data.n_users), replace=False)]
    event_rows = rng.choice(data.n_users, size=max(1, round(share * data.n_users)), replace=False)
    scratch = Store(workdir / "store")
    scratch.set_current(scratch.copy_in(version))
    max_len = scratch.load(verify=False).config.max_len
    token = secrets.token_hex(16)
    port, redis_port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    procs: list[subprocess.Popen[bytes]] = [subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)]
    try:
        wait_for_redis(url)
        seed_histories(url, data, max_len)
        env = child_env(code, ELCREC_REDIS_URL=url, ELCREC_ADMIN_TOKEN=token, ELCREC_THREADS="1",
                        ELCREC_DEVICE="cpu")
        server, base = start_service(scratch.root, port, env, workdir / "service.log")
        procs.append(server)
        with httpx.Client(base_url=base, timeout=60) as client:
            before, versions_before = read_intents(client, read_users)
            for u in event_rows.tolist():
                items = [str(int(data.sequence(u)[-1])), str(int(rng.integers(1, data.n_items + 1)))]
                client.post(f"/v1/users/{data.users[u]}/events", json={"item_ids": items}).raise_for_status()
            started = time.perf_counter()
            with open(workdir / "retrain.log", "w") as log:
                done = subprocess.run(
                    [sys.executable, "-m", "elcrec", "retrain", "--artifacts", str(scratch.root), "--data", str(data_path),
                     "--redis", url, "--epochs", str(epochs), "--device", "cpu"],
                    stdout=subprocess.PIPE, stderr=log, text=True, cwd=code, env=child_env(code),
                )
            seconds = time.perf_counter() - started
            (workdir / "summary.json").write_text(done.stdout)
            if done.returncode not in (0, 3):  # 3: gated or superseded, a result to report
                raise SystemExit(f"retrain failed ({done.returncode}): {done.stdout[-2000:]}; see {workdir}/retrain.log")
            summary = json.loads(done.stdout)
            published = summary.get("published")
            if published is None:
                raise SystemExit(f"the job published nothing ({summary['status']}: {summary['message']}); "
                                 f"{version.name} stays live, every user keeps their intent")
            reload = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {token}"})
            reload.raise_for_status()
            wait_until(lambda: client.get("/v1/model").json().get("version") == published, 120,
                       f"the service to serve {published}", workdir / "service.log")
            after, versions_after = read_intents(client, read_users)
    finally:
        stop_processes(procs)
    with_events = {data.users[u] for u in event_rows.tolist()}
    kept = [before[u] == after[u] for u in read_users]
    quiet = [before[u] == after[u] for u in read_users if u not in with_events]
    old, new = scratch.manifest(version.name).info, scratch.manifest(published).info
    return {
        "version": version.name, "published": published, "code": str(code),
        "served_before": sorted(versions_before), "served_after": sorted(versions_after),
        "users_read": len(read_users), "users_with_events": len(event_rows), "share": share, "epochs": epochs,
        "users_kept": round(float(np.mean(kept)), 4),
        "users_kept_without_events": round(float(np.mean(quiet)), 4), "users_without_events": len(quiet),
        "intents_used_before": len(set(before.values())), "intents_used_after": len(set(after.values())),
        "job": {"status": summary["status"], "intents": summary["intents"], "gate": summary["gate"],
                "train": {k: summary["train"].get(k) for k in ("epochs_run", "best_epoch", "intent_settling",
                                                                "intent_following")}},
        "intent_health_test": {"before": old.intent_health, "after": new.intent_health},
        "retrain_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True, help="store (its CURRENT) or a version directory")
    parser.add_argument("--data", type=Path, required=True, help="the interaction file the model was trained on")
    parser.add_argument("--users", type=int, default=2000, help="users whose intents are read before and after")
    parser.add_argument("--share", type=float, default=0.01, help="share of all users with new events")
    parser.add_argument("--epochs", type=int, default=2, help="most epochs of the warm-started retrain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose service and job run (default: this one)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the scratch store and logs here (new folder)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=False)
        result = measure(args.artifacts, args.data, args.users, args.share, args.epochs, args.seed,
                         args.code.resolve(), args.workdir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="elcrec-intent-ids-") as tmp:
            result = measure(args.artifacts, args.data, args.users, args.share, args.epochs, args.seed,
                             args.code.resolve(), Path(tmp))
    write_json(result, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
