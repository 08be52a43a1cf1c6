"""Serving load benchmark: `elcrec serve` with a real redis-server, driven by wrk (or httpx as fallback).

    python -m bench.load --artifacts STORE --data FILE [--duration 5] [--rounds 3] [--peer] [--out FILE]

Starts a redis-server, the service and (with --peer) the plain service of bench/peer.py on free loopback ports,
then measures side by side, every phase once a round for --rounds rounds (medians reported; ratios are the
median of each round's ratio, so that other load on the machine, which comes and goes, touches both sides):

  1. GET /health/live at 32 connections: the HTTP stack's own ceiling on this machine (the bare endpoint);
  2. **every request new** (the headline): POST /v1/recommend with an explicit history that no request of the run
     has sent before, at 32 connections (throughput, target >= 0.5 of 1) and at 4 (p50/p99, target p99 <= 10 ms).
     With --data the histories are every prefix of every user's sequence (its last T known items, T the model's
     max_len), as a user's history stands after each of their events: a cache keyed on the history never sees
     one twice. The bodies are shuffled and each phase and round takes its own slice, each body once: no body twice in the run. The
     service's answer-cache counters (/metrics) are read around each phase and shown (0 hits here);
  3. with --peer: the peer on new histories of the same pool (its own slices) at 32 and 4 connections
     (target: the service >= 8x at 32);
  4. the cached path: recommendations by user_id (history from Redis) drawn among --users seeded users, at 32 and
     4 connections, and 200 explicit histories sent again and again at 32: after the first answers they come
     from the answer cache (ELCREC_ANSWER_CACHE), as a page shown again does.

Without --data the histories are random known items. ELCREC_* variables in the environment reach the service
(e.g. ELCREC_INFERENCE_THREAD, ELCREC_PRECISION); --workers starts that many service processes. The peer runs as
it would where nobody tuned it: torch's default threads (OMP_NUM_THREADS unset for it), or --peer-threads N.
The report includes the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from bench import write_json
from bench.harness import (
    HOST,
    LUA_BODIES_FILE,
    LUA_RECOMMEND_HISTORY,
    LUA_RECOMMEND_USER,
    cache_counts,
    free_port,
    json_line,
    known_items,
    lua_strings,
    max_len,
    rss_mib,
    run_httpx,
    run_wrk,
    start_peer,
    start_redis,
    start_service,
    stop_processes,
)

# Shares of the pool of new histories per phase that takes them: the 32-connection phases run fastest.
SLICES = {"warm_up": 0.04, "peer_warm_up": 0.01, "new_32": 0.45, "new_4": 0.25, "peer_new_32": 0.15,
          "peer_new_4": 0.10}


@dataclass
class Plan:
    """What a run sends: the seeded users' histories and the slices of new bodies (JSON lines) per phase."""

    generator: str
    duration: int
    seeded: dict[str, list[str]]
    repeated: list[str]  # the cached-path bodies, sent again and again
    slices: dict[str, list[str]]
    pool: int
    histories: str


@dataclass
class Run:
    """A running service and what the phases measured."""

    plan: Plan
    workdir: Path
    base: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)  # new bodies sent (httpx only: wrk does not say)
    rss_mib: float = 0.0  # the service's (all its processes') after its phases
    workers: int = 1


def main() -> None:
    args = parse_args()
    plan = setup(args)
    workdir = Path(tempfile.mkdtemp(prefix="elcrec-load-"))
    load_before = os.getloadavg()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        run = start(args, plan, workdir, procs)
        measure(run, args.artifacts, args.peer, args.rounds, args.peer_threads)
        report = summarise(run, args, load_before)
    finally:
        stop_processes(procs)
        shutil.rmtree(workdir, ignore_errors=True)
    print_summary(report)
    write_json(report, args.out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True, help="artifact store to serve")
    parser.add_argument("--duration", type=int, default=5, help="seconds per phase and round (1-120)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all phases (medians reported)")
    parser.add_argument("--users", type=int, default=1000, help="users seeded with histories (the cached path)")
    parser.add_argument("--history", type=int, default=20, help="items per random history (no --data)")
    parser.add_argument("--data", type=Path, help="the model's data file: real users' histories instead of random")
    parser.add_argument("--peer", action="store_true", help="also measure the plain service (bench/peer.py)")
    parser.add_argument("--peer-threads", type=int,
                        help="the peer's torch threads (default: torch's own choice, OMP_NUM_THREADS unset for it)")
    parser.add_argument("--workers", type=int, default=1, help="service processes (elcrec serve --workers)")
    parser.add_argument("--generator", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be between 1 and 120 seconds")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "httpx"
    if args.generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --generator httpx")
    if shutil.which("redis-server") is None:
        parser.error("redis-server is not installed")
    if args.data is not None and not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")
    return args


def setup(args: argparse.Namespace) -> Plan:
    """The bodies of the run: seeded users, the repeated histories and the slices of new ones."""
    items = known_items(args.artifacts)
    rng = random.Random(0)
    if args.data:
        pool = new_histories(args.data, set(items), rng, max_len(args.artifacts))
        described = f"every prefix of every user's sequence in {args.data}"
    else:
        pool = random_histories(items, min(args.history, max_len(args.artifacts)), 200_000, rng)
        described = f"random, 1-{args.history} items"
    if not pool:
        raise SystemExit("error: no history with a known item to send")
    seeded = {f"bench-{u}": pool[-u] for u in range(1, min(args.users, len(pool)) + 1)}
    repeated = [json_line({"history": pool[-len(seeded) - n - 1], "k": 10}) for n in range(min(200, len(pool) // 10))]
    fresh = [json_line({"history": h, "k": 10}) for h in pool[: len(pool) - len(seeded) - len(repeated)]]
    slices, start = {}, 0
    for name, share in SLICES.items():
        size = int(share * len(fresh))
        slices[name], start = fresh[start : start + size], start + size
    return Plan(args.generator, args.duration, seeded, repeated or [json_line({"history": pool[0], "k": 10})],
                slices, len(fresh), described)


def new_histories(data: Path, known: set[str], rng: random.Random, max_len: int = 50) -> list[list[str]]:
    """Every prefix of every user's sequence (known items only, the last `max_len`: all that the service stores and
    encodes of a history), each history once, shuffled."""
    seen: set[tuple[str, ...]] = set()
    for line in data.read_text().splitlines():
        ids = [i for i in line.split()[1:] if i in known]
        for end in range(1, len(ids) + 1):
            seen.add(tuple(ids[max(0, end - max_len) : end]))
    out = [list(h) for h in sorted(seen)]
    rng.shuffle(out)
    return out


def random_histories(items: list[str], longest: int, n: int, rng: random.Random) -> list[list[str]]:
    """`n` distinct histories of random known items (as many as there are when fewer exist), shuffled."""
    seen: set[tuple[str, ...]] = set()
    for _ in range(n * 2):
        seen.add(tuple(rng.sample(items, rng.randint(1, min(longest, len(items))))))
        if len(seen) >= n:
            break
    out = [list(h) for h in sorted(seen)]
    rng.shuffle(out)
    return out


def start(args: argparse.Namespace, plan: Plan, workdir: Path, procs: list[subprocess.Popen[bytes]]) -> Run:
    """Redis, then the service with default settings (ELCREC_* from the environment), its users seeded."""
    redis_port = free_port()
    procs.append(start_redis(redis_port))
    env = {**os.environ, "ELCREC_REDIS_URL": f"redis://{HOST}:{redis_port}/0", "ELCREC_LOG_LEVEL": "warning"}
    server, base = start_service(args.artifacts, free_port(), env, workdir / "serve.log", args.workers)
    procs.append(server)
    run = Run(plan, workdir, base, procs, workers=args.workers)
    with httpx.Client(base_url=base, timeout=10) as c:
        for user, history in plan.seeded.items():
            c.post(f"/v1/users/{user}/events", json={"item_ids": history}).raise_for_status()
        run.model = c.get("/v1/model").json()
    m = run.model
    print(f"generator: {plan.generator}; model {m['version']} ({m['n_items']} items, {m['config']['n_layers']} "
          f"layers, pooling {m['pooling']}, device {m['device']}); {os.cpu_count()} CPUs, {args.workers} "
          f"service process(es); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"new histories: {plan.pool:,} ({plan.histories})", flush=True)
    return run


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    base: str
    path: str
    conns: int
    method: str = "POST"
    new: bool = False  # the phase's own slice of new bodies, each sent once
    script: str | None = None
    bodies: list[str] | None = None
    cache: bool = True  # the server has the answer-cache counters (the service; not the peer)


def phases(run: Run, peer: str | None) -> list[Phase]:
    """The bare endpoint, every request new (the headline), the peer on new histories, then the cached path."""
    user = {"script": LUA_RECOMMEND_USER % {"users": len(run.plan.seeded), "seed": 1},
            "bodies": [json_line({"user_id": u, "k": 10}) for u in run.plan.seeded]}
    repeated = {"script": LUA_RECOMMEND_HISTORY % {"bodies": lua_strings(run.plan.repeated)},
                "bodies": run.plan.repeated}
    rec = "/v1/recommend"
    out = [
        Phase("live_32", "GET /health/live (bare endpoint)", run.base, "/health/live", 32, method="GET"),
        Phase("new_32", "recommend, every request new", run.base, rec, 32, new=True),
        Phase("new_4", "recommend, every request new", run.base, rec, 4, new=True),
    ]
    if peer is not None:
        out += [Phase("peer_new_32", "peer, every request new", peer, "/recommend", 32, new=True, cache=False),
                Phase("peer_new_4", "peer, every request new", peer, "/recommend", 4, new=True, cache=False)]
    return out + [
        Phase("user_32", "recommend by user (Redis), cached", run.base, rec, 32, **user),  # type: ignore[arg-type]
        Phase("user_4", "recommend by user (Redis), cached", run.base, rec, 4, **user),  # type: ignore[arg-type]
        Phase("history_32", "recommend, 200 histories repeated", run.base, rec, 32, **repeated),  # type: ignore[arg-type]
    ]


def measure(run: Run, store: Path, with_peer: bool, rounds: int, peer_threads: int | None) -> None:
    """Every phase once a round, round after round: a machine whose other load comes and goes disturbs each
    phase alike, and each round's ratios compare phases measured a few seconds apart. The peer is started
    beside the service and idles while the service is measured (and the other way round)."""
    peer = None
    if with_peer:
        proc, peer = start_peer(store, free_port(), run.workdir / "peer.log", peer_threads)
        run.procs.append(proc)
    warm = [Phase("warm_up", "warm-up (new histories)", run.base, "/v1/recommend", 8, new=True)]
    if peer is not None:
        warm.append(Phase("peer_warm_up", "peer warm-up", peer, "/recommend", 8, new=True, cache=False))
    if run.workers > 1:  # each process counts its own answers, and /metrics shows whichever one answers it
        warm = [replace(p, cache=False) for p in warm]
    for p in warm:
        run.results[p.name] = measure_once(run, p, 0, 1, min(3, run.plan.duration))
    rounds_of: dict[str, list[dict[str, Any]]] = {}
    for r in range(rounds):
        print(f"round {r + 1} of {rounds}, load average {os.getloadavg()[0]:.2f}", flush=True)
        for p in phases(run, peer):
            p = replace(p, cache=p.cache and run.workers == 1)
            rounds_of.setdefault(p.name, []).append(measure_once(run, p, r, rounds, run.plan.duration))
    run.rss_mib = rss_mib(run.procs[1].pid)
    for name, results in rounds_of.items():
        run.results[name] = combine(results)


def measure_once(run: Run, p: Phase, r: int, rounds: int, seconds: int) -> dict[str, Any]:
    before = cache_counts(p.base) if p.cache else None
    script, bodies = p.script, p.bodies
    if p.new:
        share = run.plan.slices[p.name]
        bodies = share[r * len(share) // rounds : (r + 1) * len(share) // rounds]  # this round's part
        if not bodies:
            raise SystemExit(f"error: no new histories left for phase {p.name} (a larger --data is needed)")
        file = run.workdir / f"{p.name}-{r}.jsonl"
        file.write_text("\n".join(bodies) + "\n")
        script = LUA_BODIES_FILE % {"file": file, "path": p.path}
    if run.plan.generator == "wrk":
        result = run_wrk(p.base + p.path, p.conns, seconds, script)
    else:
        result = run_httpx(p.base, p.method, p.path, bodies, p.conns, seconds, once=p.new)
        run.sent += result.pop("sent_bodies", [])
    if p.new:
        assert bodies is not None
        # wrk draws at most one body per completed request, one per connection still in flight at the end and
        # one when it checks the script: below the slice's length, no body was sent twice. The httpx
        # generator sends each body once by construction (and returns them: checked in summarise).
        result["slice"] = len(bodies)
        result["repeats_possible"] = run.plan.generator == "wrk" and result["requests"] + p.conns + 1 > len(bodies)
    if before is not None:
        after = cache_counts(p.base)
        result["answer_cache"] = {k: int(after[k] - before[k]) for k in ("hit", "miss")}
    hits = result.get("answer_cache")
    print(f"{p.title:<40} {p.conns:>3} conns {result['rps']:9.0f} req/s  p50 {result.get('p50_ms', 0):6.2f} ms"
          f"  p99 {result.get('p99_ms', 0):6.2f} ms  non-2xx {result['non_2xx']}"
          + (f"  cache hits {hits['hit']} of {hits['hit'] + hits['miss']}" if hits else ""), flush=True)
    return result


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A phase over its rounds: medians of throughput and latencies, sums of counts."""
    out: dict[str, Any] = {k: statistics.median(r[k] for r in rounds)
                           for k in ("rps", "p50_ms", "p75_ms", "p90_ms", "p99_ms") if k in rounds[0]}
    out["requests"] = sum(r["requests"] for r in rounds)
    out["non_2xx"] = sum(r["non_2xx"] for r in rounds)
    if "slice" in rounds[0]:
        out["slice"] = sum(r["slice"] for r in rounds)
        out["repeats_possible"] = any(r["repeats_possible"] for r in rounds)
    if "answer_cache" in rounds[0]:
        out["answer_cache"] = {k: sum(r["answer_cache"][k] for r in rounds) for k in ("hit", "miss")}
    out["rounds"] = rounds
    return out


def ratio(results: dict[str, dict[str, Any]], top: str, bottom: str) -> float:
    """The median over rounds of `top`'s throughput over `bottom`'s in the same round."""
    pairs = zip(results[top]["rounds"], results[bottom]["rounds"], strict=True)
    return statistics.median(a["rps"] / b["rps"] for a, b in pairs)


def summarise(run: Run, args: argparse.Namespace, load_before: tuple[float, float, float]) -> dict[str, Any]:
    r = run.results
    new_phases = [n for n in SLICES if n in r]
    summary: dict[str, Any] = {
        "new_vs_live_32": ratio(r, "new_32", "live_32"),
        "new_p50_ms_at_4": r["new_4"]["p50_ms"],
        "new_p99_ms_at_4": r["new_4"]["p99_ms"],
        "new_cache_hits": sum(r[n]["answer_cache"]["hit"] for n in ("new_32", "new_4"))
        if "answer_cache" in r["new_32"] else None,
        "new_requests": sum(r[n]["requests"] for n in ("new_32", "new_4")),
        "no_body_twice": not any(r[n]["repeats_possible"] for n in new_phases)
        and len(run.sent) == len(set(run.sent)),
        "cached_user_vs_live_32": ratio(r, "user_32", "live_32"),
        "cached_user_p99_ms_at_4": r["user_4"]["p99_ms"],
        "cached_history_vs_live_32": ratio(r, "history_32", "live_32"),
        "errors": sum(x.get("non_2xx", 0) for x in r.values()),
    }
    summary["targets_met"] = {
        "new_vs_live_32 >= 0.5": summary["new_vs_live_32"] >= 0.5,
        "new_p99_ms_at_4 <= 10": summary["new_p99_ms_at_4"] <= 10.0,
        "errors == 0": summary["errors"] == 0,
    }
    if args.peer:
        summary["new_vs_peer_32"] = ratio(r, "new_32", "peer_new_32")
        summary["targets_met"]["new_vs_peer_32 >= 8"] = summary["new_vs_peer_32"] >= 8
    m = run.model
    return {
        "generator": run.plan.generator,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "model": {k: m[k] for k in ("version", "n_items", "n_intents", "device", "index", "pooling")}
        | {"n_layers": m["config"]["n_layers"], "d": m["config"]["d"]},
        "histories": run.plan.histories,
        "new_histories": run.plan.pool,
        "workers": args.workers,
        "peer_threads": args.peer_threads if args.peer else None,
        "service_rss_mib": run.rss_mib,
        "settings": {k: v for k, v in os.environ.items() if k.startswith("ELCREC_") and "TOKEN" not in k},
        "duration_s": args.duration,
        "results": r,
        "sent_new_bodies": {"sent": len(run.sent), "distinct": len(set(run.sent))} if run.sent else None,
        "summary": summary,
    }


def print_summary(report: dict[str, Any]) -> None:
    s = report["summary"]
    line = (f"every request new: {s['new_vs_live_32']:.2f} of the bare endpoint at 32 connections (target >= 0.5), "
            f"p50/p99 at 4 connections {s['new_p50_ms_at_4']:.2f}/{s['new_p99_ms_at_4']:.2f} ms (target p99 <= 10), "
            + (f"cache hits {s['new_cache_hits']} of {s['new_requests']}, " if s["new_cache_hits"] is not None
               else "cache hits not counted (several processes), ")
            + f"no body twice: {s['no_body_twice']}")
    if "new_vs_peer_32" in s:
        line += f"; {s['new_vs_peer_32']:.1f}x the plain peer (target >= 8x)"
    line += (f". Cached: by user {s['cached_user_vs_live_32']:.2f} of the bare endpoint, p99 at 4 "
             f"{s['cached_user_p99_ms_at_4']:.2f} ms; repeated histories {s['cached_history_vs_live_32']:.2f}. "
             f"Errors: {s['errors']}. Load average {report['machine']['load_average_after'][0]:.2f}.")
    print(line)


if __name__ == "__main__":
    main()
