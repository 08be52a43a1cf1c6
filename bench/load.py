"""Serving load benchmark: `elcrec serve` with a real redis-server, driven by wrk (or httpx as fallback).

    python bench/load.py --artifacts STORE [--duration 10] [--users 1000] [--out bench/out/load.json]

Starts a redis-server and the service on free loopback ports, seeds user histories through the events
endpoint, then measures in one run:

  1. GET /health/live at 32 connections: the HTTP stack's own ceiling on this machine;
  2. POST /v1/recommend by user_id (history from Redis) at 32 connections: throughput, target >= 50% of 1;
  3. the same at 4 connections: p50/p99 latency, target p99 <= 10 ms;
  4. POST /v1/recommend with an explicit history (no Redis) at 32 connections, for comparison;
  5. every request a new history (one never answered before, so never in the answer cache) at 32 and 4
     connections: the cost when the encoder runs for every request;
  6. with --peer, after the service has stopped: the plain service of bench/peer.py on the same new histories.

The seeded users' requests repeat (wrk draws among --users users), as a page shown again does: after the first
answers they come from the answer cache (ELCREC_ANSWER_CACHE); each phase prints its hit rate. --data FILE takes
real users' histories from the model's data file instead of random items.

ELCREC_* variables in the environment reach the service (e.g. ELCREC_BATCH_WINDOW_MS, ELCREC_THREADS).
Only loopback addresses are used; every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import write_json
from elcrec.model.artifact import ITEMS, resolve

HOST = "127.0.0.1"
ELCREC = Path(sys.executable).parent / "elcrec"

LUA_RECOMMEND_USER = """
math.randomseed(%(seed)d)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = '{"user_id":"bench-' .. math.random(1, %(users)d) .. '","k":10}'
  return wrk.format(nil, "/v1/recommend", nil, body)
end
"""

LUA_RECOMMEND_NEW = """
math.randomseed(%(seed)d)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local histories = {%(histories)s}
local items = {%(items)s}
request = function()
  local h = histories[math.random(1, #histories)]
  local body = '{"history":[' .. h .. ',' .. items[math.random(1, #items)] .. '],"k":10}'
  return wrk.format(nil, "%(path)s", nil, body)
end
"""

LUA_RECOMMEND_HISTORY = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {%(bodies)s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "/v1/recommend", nil, bodies[i])
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_until(check: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, httpx.TransportError):
            pass
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise SystemExit(f"gave up waiting for {what}\n{tail}")


def start_service(store: Path, port: int, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `elcrec serve` on `store` (output to `log`), wait until it is ready; return it and its base URL."""
    argv = [str(ELCREC), "serve", "--artifacts", str(store.resolve()), "--host", HOST, "--port", str(port)]
    return start_server(argv, port, "/health/ready", "the service", log, env)


def start_peer(store: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the plain peer of bench/peer.py on `store`; return it and its base URL once it answers."""
    argv = [sys.executable, "-m", "bench.peer", "--artifacts", str(store.resolve()), "--host", HOST, "--port", str(port)]
    return start_server(argv, port, "/health", "the peer", log, None)


def start_server(
    argv: list[str], port: int, ready_path: str, what: str, log: Path, env: dict[str, str] | None
) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=Path(__file__).resolve().parents[1])
    base = f"http://{HOST}:{port}"
    try:
        wait_until(lambda: httpx.get(base + ready_path).status_code == 200, 180, f"{what} to be ready", log)
    except SystemExit:
        stop_processes([server])
        raise
    return server, base


def known_items(store: Path) -> list[str]:
    ids = json.loads((resolve(store) / ITEMS).read_text())["ids"]
    return [i for i in ids if i is not None]


def parse_wrk(text: str) -> dict[str, Any]:
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}

    def ms(value: str) -> float:
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
        if not m:
            raise ValueError(f"cannot read wrk latency {value!r}")
        return float(m.group(1)) * units[m.group(2)]

    out: dict[str, Any] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}  # type: ignore[union-attr]
    out["requests"] = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if m:
            out[f"p{pct}_ms"] = ms(m.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(bad.group(1)) if bad else 0
    sock = re.search(r"Socket errors: (.*)", text)
    out["socket_errors"] = sock.group(1).strip() if sock else ""
    return out


def run_wrk(url: str, connections: int, duration: int, script: str | None) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        if script:
            fh.write(script)
            cmd += ["-s", fh.name]
    cmd.append(url)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=True)
    finally:
        os.unlink(fh.name)
    return {
        **parse_wrk(done.stdout),
        "command": " ".join(cmd[:-1] + (["<script>"] if script else []) + [url]),
    }


async def _httpx_load(
    base: str, method: str, path: str, bodies: list[dict[str, Any]] | None, connections: int, duration: int
) -> dict[str, Any]:
    latencies: list[float] = []
    bad = 0
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=5) as client:

        async def worker(seed: int) -> None:
            nonlocal bad
            rng = random.Random(seed)
            while time.perf_counter() < stop:
                body = rng.choice(bodies) if bodies else None
                t = time.perf_counter()
                r = await client.request(method, path, json=body)
                latencies.append(time.perf_counter() - t)
                bad += r.status_code >= 300

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e3

    return {
        "rps": len(latencies) / elapsed,
        "requests": len(latencies),
        "p50_ms": pct(50),
        "p75_ms": pct(75),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "non_2xx": bad,
        "socket_errors": "",
        "command": f"httpx asyncio load generator, {connections} connections, {duration} s",
    }


def run_httpx(
    base: str, method: str, path: str, bodies: list[dict[str, Any]] | None, conns: int, dur: int
) -> dict:
    return asyncio.run(_httpx_load(base, method, path, bodies, conns, dur))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, required=True, help="artifact store to serve")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (1-120)")
    parser.add_argument("--users", type=int, default=1000, help="users seeded with histories")
    parser.add_argument("--history", type=int, default=20, help="items per seeded history (random ones, no --data)")
    parser.add_argument("--data", type=Path, help="the model's data file: real users' histories instead of random")
    parser.add_argument("--peer", action="store_true", help="also measure the plain service (bench/peer.py)")
    parser.add_argument("--generator", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be between 1 and 120 seconds")
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "httpx"
    if generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --generator httpx")
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        parser.error("redis-server is not installed")
    if args.data is not None and not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")
    items = known_items(args.artifacts)
    rng = random.Random(0)
    histories = real_histories(args.data, set(items), rng) if args.data else None

    def history_of(n: int) -> list[str]:
        return histories[n % len(histories)] if histories else rng.sample(items, args.history)

    redis_port, port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="elcrec-load-"))
    try:
        procs.append(
            subprocess.Popen(
                [redis_bin, "--port", str(redis_port), "--bind", HOST, "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        env = {
            **os.environ,
            "ELCREC_REDIS_URL": f"redis://{HOST}:{redis_port}/0",
            "ELCREC_LOG_LEVEL": "warning",
        }
        server, base = start_service(args.artifacts, port, env, workdir / "serve.log")
        procs.append(server)
        with httpx.Client(base_url=base, timeout=10) as c:
            for u in range(1, args.users + 1):
                r = c.post(f"/v1/users/bench-{u}/events", json={"item_ids": history_of(u)})
                r.raise_for_status()
            model = c.get("/v1/model").json()
        history_bodies = [{"history": history_of(args.users + n), "k": 10} for n in range(200)]
        # Every request new: a history (real or random) with one random item appended, as after a user's next
        # event; no two requests alike, so no answer is cached.
        pool = histories if histories else [rng.sample(items, args.history) for _ in range(2000)]
        new_bodies = [{"history": [*rng.choice(pool), rng.choice(items)], "k": 10} for _ in range(5000)]
        user_script = LUA_RECOMMEND_USER % {"users": args.users, "seed": 1}
        history_script = LUA_RECOMMEND_HISTORY % {"bodies": lua_strings(json_line(b) for b in history_bodies)}
        lua_pool = {"histories": lua_strings(json.dumps(h)[1:-1] for h in pool),
                    "items": lua_strings(json.dumps(i) for i in items)}

        def new_script(seed: int, path: str = "/v1/recommend") -> str:  # each phase its own draws
            return LUA_RECOMMEND_NEW % {**lua_pool, "path": path, "seed": seed}
        user_bodies = [{"user_id": f"bench-{u}", "k": 10} for u in range(1, args.users + 1)]

        def measure(
            name: str, target: str, path: str, conns: int, script: str | None, bodies: list | None,
            method: str = "POST",
        ) -> dict:
            before = cache_counts(base) if target == base else None
            if generator == "wrk":
                result = run_wrk(target + path, conns, args.duration, script)
            else:
                result = run_httpx(target, method, path, bodies, conns, args.duration)
            if before is not None:
                after = cache_counts(base)
                hits, misses = (after[k] - before[k] for k in ("hit", "miss"))
                result["answer_cache_hit_rate"] = hits / (hits + misses) if hits + misses else None
            hit = result.get("answer_cache_hit_rate")
            print(
                f"{name:<40} {conns:>3} conns  {result['rps']:9.0f} req/s"
                f"  p50 {result.get('p50_ms', 0):6.2f} ms  p99 {result.get('p99_ms', 0):6.2f} ms"
                f"  non-2xx {result['non_2xx']}" + (f"  cache hits {hit:.0%}" if hit is not None else ""),
                flush=True,
            )
            return result

        print(
            f"generator: {generator}; model {model['version']} ({model['n_items']} items, "
            f"{model['config']['n_layers']} layers, pooling {model['pooling']}, device {model['device']}); "
            f"{os.cpu_count()} CPUs; histories {'from ' + str(args.data) if histories else 'random'}"
        )
        measure("warm-up", base, "/v1/recommend", 8, user_script, user_bodies)
        results = {
            "live_32": measure("GET /health/live", base, "/health/live", 32, None, None, "GET"),
            "recommend_user_32": measure(
                "POST /v1/recommend (user, Redis)", base, "/v1/recommend", 32, user_script, user_bodies
            ),
            "recommend_user_4": measure(
                "POST /v1/recommend (user, Redis)", base, "/v1/recommend", 4, user_script, user_bodies
            ),
            "recommend_history_32": measure(
                "POST /v1/recommend (history)", base, "/v1/recommend", 32, history_script, history_bodies
            ),
            "recommend_new_32": measure(
                "POST /v1/recommend (every history new)", base, "/v1/recommend", 32, new_script(2), new_bodies
            ),
            "recommend_new_4": measure(
                "POST /v1/recommend (every history new)", base, "/v1/recommend", 4, new_script(3), new_bodies
            ),
        }
        with httpx.Client(base_url=base, timeout=10) as c:
            metrics = c.get("/metrics").text
        stop_processes([procs.pop()])  # the service: the peer gets the cores to itself
        if args.peer:
            peer, peer_base = start_peer(args.artifacts, free_port(), workdir / "peer.log")
            procs.append(peer)
            results["peer_32"] = measure("peer POST /recommend (every new)", peer_base, "/recommend", 32,
                                         new_script(2, "/recommend"), new_bodies)
            results["peer_4"] = measure("peer POST /recommend (every new)", peer_base, "/recommend", 4,
                                        new_script(3, "/recommend"), new_bodies)
        batch = {
            k: float(v) for k, v in re.findall(r"^elcrec_batch_size_(sum|count) ([\d.e+]+)$", metrics, re.M)
        }
        ratio = results["recommend_user_32"]["rps"] / results["live_32"]["rps"]
        p99 = results["recommend_user_4"]["p99_ms"]
        summary: dict[str, Any] = {
            "recommend_vs_live_32": ratio,
            "target_ratio_met": ratio >= 0.5,
            "p99_ms_at_4": p99,
            "target_p99_met": p99 <= 10.0,
            "new_vs_live_32": results["recommend_new_32"]["rps"] / results["live_32"]["rps"],
            "new_p99_ms_at_4": results["recommend_new_4"]["p99_ms"],
            "mean_batch_size": batch.get("sum", 0) / max(batch.get("count", 1), 1),
            "errors": sum(r["non_2xx"] for r in results.values()),
        }
        line = (
            f"recommend/live throughput at 32 connections: {ratio:.2f} (target >= 0.50); "
            f"p99 at 4 connections: {p99:.2f} ms (target <= 10 ms); every history new: "
            f"{summary['new_vs_live_32']:.2f} of live, p99 {summary['new_p99_ms_at_4']:.2f} ms; "
            f"mean batch {summary['mean_batch_size']:.1f}"
        )
        if args.peer:
            summary["vs_peer_32"] = results["recommend_user_32"]["rps"] / results["peer_32"]["rps"]
            summary["new_vs_peer_32"] = results["recommend_new_32"]["rps"] / results["peer_32"]["rps"]
            summary["target_peer_met"] = summary["vs_peer_32"] >= 6
            line += (f"; against the plain peer: {summary['vs_peer_32']:.1f}x (target >= 6x), every history new "
                     f"{summary['new_vs_peer_32']:.1f}x")
        print(line)
        report = {
            "generator": generator,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "model": {k: model[k] for k in ("version", "n_items", "n_intents", "device", "index", "pooling")}
            | {"n_layers": model["config"]["n_layers"], "d": model["config"]["d"]},
            "histories": str(args.data) if args.data else f"random, {args.history} items",
            "settings": {k: v for k, v in os.environ.items() if k.startswith("ELCREC_") and "TOKEN" not in k},
            "duration_s": args.duration,
            "results": results,
            "summary": summary,
        }
        write_json(report, args.out)
    finally:
        stop_processes(procs)
        shutil.rmtree(workdir, ignore_errors=True)


def real_histories(data: Path, known: set[str], rng: random.Random, cap: int = 20_000) -> list[list[str]]:
    """Users' training histories (the last two items held out, as in evaluation), known items only, the last 50,
    at most `cap` users drawn at random."""
    out = []
    for line in data.read_text().splitlines():
        ids = line.split()[1:-2]
        kept = [i for i in ids if i in known][-50:]
        if kept:
            out.append(kept)
    rng.shuffle(out)
    return out[:cap]


def json_line(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def lua_strings(values: Any) -> str:
    """A Lua table body of single-quoted strings (JSON text has no single quotes or backslashes here)."""
    return ", ".join("'" + v + "'" for v in values)


def cache_counts(base: str) -> dict[str, float]:
    text = httpx.get(base + "/metrics", timeout=10).text
    counts = dict(re.findall(r'^elcrec_answer_cache_total\{result="(\w+)"\} ([\d.e+]+)$', text, re.M))
    return {k: float(counts.get(k, 0)) for k in ("hit", "miss")}


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, newest first (the service before its Redis); SIGKILL what is still up after 15 s."""
    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
