"""Soak test: `elcrec serve` with a real redis-server under sustained mixed load, with periodic model reloads.

    python -m bench.soak [--duration 600] [--artifacts STORE] [--out bench/out/soak.json]

Starts a redis-server (AOF on, appendfsync everysec: the deployment's setting) and the service on free loopback
ports, seeds user histories, then drives the service with wrk for --duration seconds in windows of --window
seconds. wrk runs three threads, one per kind of request, each on a third of the connections:

  user     POST /v1/recommend {"user_id": ...}      history from Redis
  history  POST /v1/recommend {"history": [...]}    no Redis
  events   POST /v1/users/{id}/events               Redis MULTI: RPUSH + LTRIM + XADD

Every --reload-every seconds a new version (the base model with perturbed item embeddings) is published to the
store; the service picks it up by polling CURRENT, or, every other time, at once through POST /v1/admin/reload.
Between windows the server's RSS (/proc/PID/status) is sampled. At the end: throughput, latency, errors per
kind, reloads seen by the service, acknowledged events vs the stream's length, and RSS at start and end.

The model is the CURRENT version of --artifacts (copied: versions are added), else a random ELCRec of the
Toys_and_Games shape (--items items, 2 layers, d 64, T 50, 256 intents): latency depends on the shape, not on
training. Only loopback addresses are used; the run is bounded by --duration. ELCREC_* variables in the
environment reach the service (e.g. ELCREC_THREADS=1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import torch

from bench import write_json
from bench.harness import HOST, free_port, parse_wrk, rss_mib, start_service, stop_processes
from elcrec.model.artifact import ManifestInfo, Store, resolve
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec

TOKEN = "soak-admin-token"

LUA = """
local kinds = {"user", "history", "events"}
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("kind", kinds[(counter - 1) %% 3 + 1])
  thread:set("seed", counter)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(%(seed)d + seed)
  ok, bad = 0, 0
end
local items = {%(items)s}
local bodies = {%(bodies)s}
local headers = {["Content-Type"] = "application/json"}
request = function()
  if kind == "user" then
    local body = '{"user_id":"soak-' .. math.random(1, %(users)d) .. '","k":10}'
    return wrk.format("POST", "/v1/recommend", headers, body)
  elseif kind == "history" then
    return wrk.format("POST", "/v1/recommend", headers, bodies[math.random(1, #bodies)])
  end
  local path = "/v1/users/soak-" .. math.random(1, %(users)d) .. "/events"
  local body = '{"item_ids":["' .. items[math.random(1, #items)] .. '","' .. items[math.random(1, #items)] .. '"]}'
  return wrk.format("POST", path, headers, body)
end
response = function(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else bad = bad + 1 end
end
done = function(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("KIND %%s %%d %%d\\n", t:get("kind"), t:get("ok"), t:get("bad")))
  end
end
"""


def random_store(store: Path, n_items: int) -> None:
    torch.manual_seed(0)
    model = ELCRec(ModelConfig(n_items=n_items, d=64, n_layers=2, max_len=50, n_intents=256)).eval()
    ids: list[str | None] = [None, *(str(i) for i in range(1, n_items + 1)), None]
    Store(store).write_version(model, ids, ManifestInfo(popular_items=tuple(str(i) for i in range(1, 101))))


class Publisher(threading.Thread):
    """Every `every` seconds: a new version made from the base one; every other one loaded via admin reload."""

    def __init__(self, store: Path, base: str, every: float, stop: threading.Event) -> None:
        super().__init__(name="soak-publisher", daemon=True)
        self.store, self.every, self.stop = store, every, stop
        art = Store(store).load(base, "cpu")
        self.model, self.item_ids, self.info = art.model, art.item_ids, art.info
        self.base_items = self.model.item_embeddings.weight.detach().clone()
        self.published: list[str] = []
        self.admin_reloads = 0
        self.errors: list[str] = []
        self.base_url = ""

    def run(self) -> None:
        n = 0
        while not self.stop.wait(self.every):
            n += 1
            try:
                with torch.no_grad():
                    gen = torch.Generator().manual_seed(n)
                    noise = torch.randn(self.base_items.shape, generator=gen) * 0.01
                    self.model.item_embeddings.weight.copy_(self.base_items + noise)
                base = self.info  # as the base version describes the model, without its calibration (none is stored)
                info = ManifestInfo(origin=base.origin, data=base.data, metrics=base.metrics,
                                    popular_items=base.popular_items, intent_shares=base.intent_shares,
                                    pooling=base.pooling)
                version = Store(self.store).write_version(self.model, self.item_ids, info).name
                self.published.append(version)
                if n % 2 == 0:
                    r = httpx.post(
                        f"{self.base_url}/v1/admin/reload",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=30,
                    )
                    if r.status_code != 200:
                        self.errors.append(f"admin reload: {r.status_code} {r.text[:200]}")
                    else:
                        self.admin_reloads += 1
            except Exception as exc:  # reported at the end; the soak goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([\d.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def run_window(base: str, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    cmd = ["wrk", "-t3", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s", "-s", str(script)]
    done = subprocess.run(cmd + [base], capture_output=True, text=True, timeout=seconds + 60, check=True)
    result = parse_wrk(done.stdout)
    result["kinds"] = {
        kind: {"ok": int(ok), "bad": int(bad)}
        for kind, ok, bad in re.findall(r"^KIND (\w+) (\d+) (\d+)$", done.stdout, re.M)
    }
    result["timeouts"] = int(m.group(1)) if (m := re.search(r"timeout (\d+)", result["socket_errors"])) else 0
    return result


def xlen(redis_port: int) -> int | None:
    """Entries in the events stream (None without redis-cli)."""
    if not shutil.which("redis-cli"):
        return None
    cmd = ["redis-cli", "-p", str(redis_port), "XLEN", "elcrec:events"]
    return int(subprocess.run(cmd, capture_output=True, text=True).stdout.strip() or 0)


def parse_args() -> tuple[argparse.Namespace, str]:
    """-> (the arguments, the redis-server binary)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=600, help="seconds of load in all (10-3600)")
    parser.add_argument("--window", type=int, default=30, help="seconds per wrk run (RSS sampled between)")
    parser.add_argument("--connections", type=int, default=12, help="wrk connections, split over 3 kinds")
    parser.add_argument("--reload-every", type=float, default=30.0, help="seconds between new versions")
    parser.add_argument("--artifacts", type=Path, help="store whose CURRENT version to serve (copied)")
    parser.add_argument("--items", type=int, default=12000, help="catalog size of the random model")
    parser.add_argument("--users", type=int, default=2000, help="users seeded with histories")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--max-growth-per-reload", type=float, default=1.0,
                        help="fail if RSS grows by more than this many MiB per reload (first vs last quarter)")
    args = parser.parse_args()
    if not 10 <= args.duration <= 3600:
        parser.error("--duration must be between 10 and 3600 seconds")
    if not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk)")
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        parser.error("redis-server is not installed")
    return args, redis_bin


@dataclass
class Setup:
    """What the load runs against: the store, a redis-server and the service, seeded, and the wrk script."""

    store: Path
    base_version: str
    redis_port: int
    server: subprocess.Popen[bytes]
    base: str  # the service's URL
    env: dict[str, str]  # the service's environment
    model: dict[str, Any]  # /v1/model at the start
    script: Path


@dataclass
class Measured:
    elapsed: float
    windows: list[dict[str, Any]]
    samples: list[dict[str, float]]  # RSS between windows
    publisher: Publisher
    start_metrics: str
    end_metrics: str
    served: str  # the version served at the end
    ready: bool
    events_stream: int | None  # entries the stream gained during the load


def setup(args: argparse.Namespace, redis_bin: str, workdir: Path, procs: list[subprocess.Popen[bytes]]) -> Setup:
    """The store (copied or random), redis-server and the service started (added to `procs`), users seeded."""
    store = workdir / "store"
    if args.artifacts:
        Store(store).set_current(Store(store).copy_in(resolve(args.artifacts)))
    else:
        random_store(store, args.items)
    base_version = Store(store).current()
    assert base_version is not None
    items = [i for i in Store(store).load(base_version, verify=False).item_ids if i is not None]

    redis_port, port = free_port(), free_port()
    (workdir / "redis").mkdir()
    procs.append(
        subprocess.Popen(
            [redis_bin, "--port", str(redis_port), "--bind", HOST, "--dir", str(workdir / "redis"),
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    env = {
        **os.environ,
        "ELCREC_REDIS_URL": f"redis://{HOST}:{redis_port}/0",
        "ELCREC_ADMIN_TOKEN": TOKEN,
        "ELCREC_POLL_INTERVAL_S": "1",
        "ELCREC_LOG_LEVEL": "warning",
        "ELCREC_DEVICE": "cpu",
    }
    server, base = start_service(store, port, env, workdir / "serve.log")
    procs.append(server)
    rng = random.Random(0)
    with httpx.Client(base_url=base, timeout=10) as c:
        for u in range(1, args.users + 1):
            c.post(f"/v1/users/soak-{u}/events", json={"item_ids": rng.sample(items, 20)}).raise_for_status()
        model = c.get("/v1/model").json()
    bodies = [
        json.dumps({"history": rng.sample(items, rng.randint(1, 50)), "k": 10}, separators=(",", ":"))
        for _ in range(200)
    ]
    script = workdir / "soak.lua"
    script.write_text(
        LUA
        % {
            "seed": 1,
            "users": args.users,
            "items": ", ".join(f'"{i}"' for i in items),
            "bodies": ", ".join(f"'{b}'" for b in bodies),
        }
    )
    return Setup(store, base_version, redis_port, server, base, env, model, script)


def run(args: argparse.Namespace, s: Setup, stop: threading.Event) -> Measured:
    """Load in windows for --duration seconds while versions are published; RSS sampled between windows."""
    run_window(s.base, s.script, args.connections, 5)  # warm-up: not counted
    with httpx.Client(base_url=s.base, timeout=10) as c:
        start_metrics = c.get("/metrics").text
    events_start = xlen(s.redis_port)
    publisher = Publisher(s.store, s.base_version, args.reload_every, stop)
    publisher.base_url = s.base
    samples = [{"t_s": 0.0, "rss_mib": rss_mib(s.server.pid)}]
    windows = []
    t0 = time.monotonic()
    publisher.start()
    while (elapsed := time.monotonic() - t0) < args.duration - 1:
        seconds = int(min(args.window, args.duration - elapsed))
        if seconds < 1:
            break
        w = run_window(s.base, s.script, args.connections, seconds)
        w["t_end_s"] = round(time.monotonic() - t0, 1)
        w["rss_mib"] = rss_mib(s.server.pid)
        windows.append(w)
        samples.append({"t_s": w["t_end_s"], "rss_mib": w["rss_mib"]})
        print(
            f"t={w['t_end_s']:6.0f}s  {w['rps']:7.1f} req/s  p50 {w.get('p50_ms', 0):6.1f} ms  "
            f"p99 {w.get('p99_ms', 0):7.1f} ms  non-2xx {w['non_2xx']}  socket errors "
            f"{w['socket_errors'] or 0}  RSS {w['rss_mib']:.1f} MiB",
            flush=True,
        )
    elapsed = time.monotonic() - t0
    stop.set()
    publisher.join(timeout=60)
    with httpx.Client(base_url=s.base, timeout=30) as c:
        # The last published version is served once the poll has seen it.
        deadline = time.monotonic() + 30
        while publisher.published and time.monotonic() < deadline:
            if c.get("/v1/model").json()["version"] == publisher.published[-1]:
                break
            time.sleep(0.5)
        end_metrics = c.get("/metrics").text
        served = c.get("/v1/model").json()["version"]
        ready = c.get("/health/ready").json()["ready"]
    events_end = xlen(s.redis_port)
    events_stream = None if events_start is None or events_end is None else events_end - events_start
    return Measured(elapsed, windows, samples, publisher, start_metrics, end_metrics, served, ready, events_stream)


def summarize(m: Measured) -> dict[str, Any]:
    windows = m.windows
    total = sum(w["requests"] for w in windows)
    kinds: dict[str, dict[str, int]] = {}
    for w in windows:
        for kind, counts in w["kinds"].items():
            k = kinds.setdefault(kind, {"ok": 0, "bad": 0})
            k["ok"] += counts["ok"]
            k["bad"] += counts["bad"]
    p99s = sorted(w["p99_ms"] for w in windows)
    rss = [s["rss_mib"] for s in m.samples]
    # Compare the first and last quarter of the run rather than two single samples: less noise.
    q = max(1, len(rss) // 4)
    return {
        "duration_s": round(m.elapsed, 1),
        "requests": total,
        "throughput_rps": round(total / m.elapsed, 1),
        "p50_ms_median_window": sorted(w["p50_ms"] for w in windows)[len(windows) // 2],
        "p99_ms_median_window": p99s[len(p99s) // 2],
        "p99_ms_worst_window": p99s[-1],
        "non_2xx": sum(w["non_2xx"] for w in windows),
        "socket_errors": [w["socket_errors"] for w in windows if w["socket_errors"]],
        "by_kind": kinds,
        "versions_published": len(m.publisher.published),
        "admin_reloads": m.publisher.admin_reloads,
        "publisher_errors": m.publisher.errors,
        "reloads_seen_by_service": metric(m.end_metrics, "elcrec_reloads_total")
        - metric(m.start_metrics, "elcrec_reloads_total"),
        "reload_failures": metric(m.end_metrics, "elcrec_reload_failures_total"),
        "served_at_end": m.served,
        "ready_at_end": m.ready,
        "events_acknowledged": kinds.get("events", {}).get("ok"),
        "events_in_stream": m.events_stream,
        "rss_mib_start": round(rss[0], 1),
        "rss_mib_end": round(rss[-1], 1),
        "rss_mib_max": round(max(rss), 1),
        "rss_mib_first_quarter_mean": round(sum(rss[:q]) / q, 1),
        "rss_mib_last_quarter_mean": round(sum(rss[-q:]) / q, 1),
    }


def report(args: argparse.Namespace, s: Setup, m: Measured, serve_log: Path) -> None:
    """Print and write the results; exit with a message where the token leaked or memory grew with reloads."""
    summary = summarize(m)
    print(json.dumps(summary, indent=2), flush=True)
    write_json({
        "command": " ".join(["python -m bench.soak", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "model": {k: s.model[k] for k in ("version", "n_items", "n_intents", "max_len", "device", "index")},
        "settings": {k: v for k, v in s.env.items() if k.startswith("ELCREC_") and "TOKEN" not in k},
        "summary": summary,
        "rss_samples": m.samples,
        "windows": [{k: v for k, v in w.items() if k != "socket_errors" or v} for w in m.windows],
    }, args.out)
    if TOKEN in serve_log.read_text():
        raise SystemExit("the admin token appeared in the service log")
    # Memory must not grow with every model swap: between the first and last quarter of the run, at most
    # --max-growth-per-reload MiB for each reload the service saw (traces were kept alive: ~3-5 MiB each).
    reloads = summary["reloads_seen_by_service"] or 0
    growth = summary["rss_mib_last_quarter_mean"] - summary["rss_mib_first_quarter_mean"]
    if reloads and growth > args.max_growth_per_reload * reloads:
        raise SystemExit(
            f"RSS grew {growth:.1f} MiB over {reloads:.0f} reloads, more than {args.max_growth_per_reload} MiB each"
        )


def main() -> None:
    args, redis_bin = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="elcrec-soak-"))
    procs: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    try:
        s = setup(args, redis_bin, workdir, procs)
        model = s.model
        print(
            f"model {model['version']}: {model['n_items']} items, {model['config']['n_layers']} layers, "
            f"{model['n_intents']} intents, device {model['device']}; {os.cpu_count()} CPUs; "
            f"{args.connections} connections; {args.duration} s in {args.window} s windows; "
            f"a new version every {args.reload_every:.0f} s",
            flush=True,
        )
        measured = run(args, s, stop)
        report(args, s, measured, workdir / "serve.log")
    finally:
        stop.set()
        stop_processes(procs)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
