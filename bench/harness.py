"""What the serving benchmarks share: ports, starting and stopping redis-server, the service and the peer, wrk and
its Lua scripts, an httpx load generator, and the service's own counters.

Only loopback addresses are used; every load run is bounded by its duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from elcrec.model.artifact import ITEMS, MANIFEST, resolve

HOST = "127.0.0.1"
# `python -m elcrec` rather than the console script: the code of the checkout the benchmark runs from
ELCREC = [sys.executable, "-m", "elcrec"]
ROOT = Path(__file__).resolve().parents[1]

LUA_RECOMMEND_USER = """
math.randomseed(%(seed)d)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = '{"user_id":"bench-' .. math.random(1, %(users)d) .. '","k":10}'
  return wrk.format(nil, "/v1/recommend", nil, body)
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

# Each body of a file once, in order (one JSON body a line). Past the end it starts again: the caller compares
# wrk's request count with the file's length (`Slice.repeated`), so a slice too short shows as repeats.
LUA_BODIES_FILE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for line in io.lines("%(file)s") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "%(path)s", nil, bodies[i])
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


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A throwaway redis-server on loopback (no persistence); raises SystemExit when it is not installed."""
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("error: redis-server is not installed (apt-get install redis-server)")
    return subprocess.Popen(
        [redis_bin, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_service(
    store: Path, port: int, env: dict[str, str], log: Path, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `elcrec serve` on `store` (output to `log`), wait until it is ready; return it and its base URL."""
    argv = [*ELCREC, "serve", "--artifacts", str(store.resolve()), "--host", HOST, "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return start_server(argv, port, "/health/ready", "the service", log, env)


def start_peer(store: Path, port: int, log: Path, threads: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start the plain peer of bench/peer.py on `store`; return it and its base URL once it answers. threads: its
    torch threads (OMP_NUM_THREADS); None: torch's default, as the peer would run where nobody set it."""
    argv = [sys.executable, "-m", "bench.peer", "--artifacts", str(store.resolve()), "--host", HOST, "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return start_server(argv, port, "/health", "the peer", log, env)


def start_server(
    argv: list[str], port: int, ready_path: str, what: str, log: Path, env: dict[str, str] | None
) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://{HOST}:{port}"
    try:
        wait_until(lambda: httpx.get(base + ready_path).status_code == 200, 180, f"{what} to be ready", log)
    except SystemExit:
        stop_processes([server])
        raise
    return server, base


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, newest first (the service before its Redis); SIGKILL what is still up after 15 s."""
    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (uvicorn's workers are children), in MiB."""
    total = 0.0
    for p in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def _descendants(pid: int) -> Iterator[int]:
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            yield int(child)
            yield from _descendants(int(child))


def known_items(store: Path) -> list[str]:
    ids = json.loads((resolve(store) / ITEMS).read_text())["ids"]
    return [i for i in ids if i is not None]


def max_len(store: Path) -> int:
    """The served version's T: histories the service stores and encodes are its last T items."""
    return int(json.loads((resolve(store) / MANIFEST).read_text())["model_config"]["max_len"])


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
    base: str, method: str, path: str, bodies: Sequence[Any] | None, connections: int, duration: int,
    once: bool,
) -> dict[str, Any]:
    latencies: list[float] = []
    bad = 0
    sent: list[Any] = []
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    queue = iter(bodies or ())
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=5) as client:

        async def worker(seed: int) -> None:
            nonlocal bad
            rng = random.Random(seed)
            while time.perf_counter() < stop:
                if once:  # each body once, in order, until they run out
                    body = next(queue, None)
                    if body is None:
                        return
                    sent.append(body)
                else:
                    body = rng.choice(bodies) if bodies else None
                t = time.perf_counter()
                content = body.encode() if isinstance(body, str) else None
                r = await client.request(method, path, json=None if content else body, content=content,
                                         headers={"content-type": "application/json"} if content else None)
                latencies.append(time.perf_counter() - t)
                bad += r.status_code >= 300

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e3 if latencies else 0.0

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
        **({"sent_bodies": sent} if once else {}),
    }


def run_httpx(
    base: str, method: str, path: str, bodies: Sequence[Any] | None, conns: int, dur: int, once: bool = False
) -> dict[str, Any]:
    """Load from `conns` concurrent clients for `dur` seconds: bodies drawn at random, or with `once` each body
    (a JSON string or object) sent once, in order, stopping early when they run out (the bodies sent are
    returned as `sent_bodies`)."""
    return asyncio.run(_httpx_load(base, method, path, bodies, conns, dur, once))


def json_line(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def lua_strings(values: Any) -> str:
    """A Lua table body of single-quoted strings (JSON text has no single quotes or backslashes here)."""
    return ", ".join("'" + v + "'" for v in values)


def cache_counts(base: str) -> dict[str, float]:
    """The service's answer-cache counters (`elcrec_answer_cache_total`), hits and misses so far."""
    text = httpx.get(base + "/metrics", timeout=10).text
    counts = dict(re.findall(r'^elcrec_answer_cache_total\{result="(\w+)"\} ([\d.e+]+)$', text, re.M))
    return {k: float(counts.get(k, 0)) for k in ("hit", "miss")}
