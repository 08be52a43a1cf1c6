"""The service's memory across model swaps: versions published one by one while requests flow.

    python -m bench.swap_memory [--swaps 16] [--artifacts STORE] [--items 12000] [--connections N [--requests R]]
                                [--settle 3] [--out FILE.json]

Starts `elcrec serve` as its own process on a copy of the store (the CURRENT version of --artifacts, else a random
ELCRec of the Toys_and_Games shape: --items items, 2 layers, d 64, T 50, 256 intents) and publishes --swaps
versions one by one (the base model with perturbed item embeddings, written with `write_version` and made
CURRENT; the service picks each up by polling CURRENT) while `POST /v1/recommend` requests with new random histories
flow: from one client thread the whole time, or with --connections, from wrk started just before each version is
published, for --settle seconds or, with --requests, until R requests have been answered. After each swap it waits
until `GET /v1/model` names the new version, then for the requests (and --settle seconds), and reads the server's
RSS (/proc/PID/status VmRSS). --requests makes every version answer as many new histories, so that its answer cache
(ELCREC_ANSWER_CACHE) holds as many entries when RSS is read: with a time window, RSS follows the throughput.

Reported: RSS before the first swap, after the first and after the last; the growth between those two; and the
slope of RSS over swaps --fit-from..N (MiB a swap; Theil-Sen: the median of the slopes between two swaps), which
is what a steady leak shows and what the per-swap test (tests/service/test_swap_memory.py) bounds. ELCREC_*
variables in the environment reach the service. No Redis: requests carry their history.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import torch

from bench import write_json
from bench.harness import rss_mib
from elcrec.model.artifact import Store, resolve
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.model.manifest import ManifestInfo

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]


def slope(xs: list[float], ys: list[float]) -> float:
    """Theil-Sen slope of ys over xs: the median of the slopes between every two points (0 for fewer than two). A
    steady leak makes nearly all of them positive; one step of the allocator moves only those that straddle it,
    where it would tilt a least-squares line."""
    pairs = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    return statistics.median(pairs) if pairs else 0.0


def setup(store: Path, artifacts: Path | None = None, items: int = 12000, layers: int = 2, d: int = 64,
          max_len: int = 50, intents: int = 256) -> str:
    """Fill `store` with the version to start from (a copy of --artifacts' CURRENT, else a random model of the given
    shape); return its name."""
    if artifacts is not None:
        Store(store).set_current(Store(store).copy_in(resolve(artifacts)))
    else:
        torch.manual_seed(0)
        model = ELCRec(ModelConfig(n_items=items, d=d, n_layers=layers, max_len=max_len, n_intents=intents)).eval()
        ids: list[str | None] = [None, *(f"i{i}" for i in range(1, items + 1)), None]
        popular = tuple(f"i{i}" for i in range(1, min(items, 100) + 1))
        Store(store).write_version(model, ids, ManifestInfo(popular_items=popular))
    name = Store(store).current()
    assert name is not None
    return name


@dataclass
class Traffic:
    """A client thread posting new random histories until stopped; counts answers by status."""

    base: str
    items: list[str]
    max_len: int
    stop: threading.Event = field(default_factory=threading.Event)
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        rng = random.Random(0)
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                history = rng.sample(self.items, rng.randint(1, min(self.max_len, len(self.items))))
                try:
                    r = client.post("/v1/recommend", json={"history": history, "k": 10})
                except httpx.HTTPError as exc:
                    self.failed += 1
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append(f"{r.status_code}: {r.text[:200]}")


def _serve(store: Path, log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", "elcrec", "serve", "--artifacts", str(store), "--host", HOST, "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"elcrec serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/health/ready", timeout=5).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"elcrec serve did not become ready in 180 s:\n{log.read_text()[-3000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _served_version(base: str) -> str | None:
    try:
        return str(httpx.get(base + "/v1/model", timeout=10).json()["version"])
    except (httpx.HTTPError, KeyError, ValueError):
        return None


WRK_LUA = """
local items = {%(items)s}
local headers = {["Content-Type"] = "application/json"}
local answered = 0
function init(args)
  math.randomseed(%(seed)d + os.time())
end
response = function(status, headers, body)
  answered = answered + 1
  if %(count)d > 0 and answered == %(count)d then
    local f = io.open("%(marker)s", "w")
    f:write("done")
    f:close()
  end
end
request = function()
  local n = math.random(1, %(max_len)d)
  local picked = {}
  for i = 1, n do picked[i] = '"' .. items[math.random(1, #items)] .. '"' end
  return wrk.format("POST", "/v1/recommend", headers, '{"k":10,"history":[' .. table.concat(picked, ",") .. ']}')
end
"""


def wrk_script(path: Path, items: list[str], max_len: int, seed: int, count: int = 0) -> Path:
    """A wrk script posting a new random history (1..max_len known items) with every request; with `count`, its
    (single) thread writes the file `marker_of(path)` once that many have been answered."""
    quoted = ",".join(json.dumps(i) for i in items)
    marker = marker_of(path)
    path.write_text(WRK_LUA % {"items": quoted, "max_len": max_len, "seed": seed, "count": count, "marker": marker})
    return path


def marker_of(script: Path) -> Path:
    return script.with_suffix(".done")


def start_wrk(base: str, script: Path, connections: int, seconds: float) -> subprocess.Popen[str]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script),
            base]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_wrk(proc: subprocess.Popen[str]) -> tuple[int, int]:
    """(answers with 2xx, failures) of a finished wrk run."""
    out, _ = proc.communicate(timeout=120)
    done = re.search(r"(\d+) requests in", out)
    if proc.returncode != 0 or done is None:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out[-2000:]}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errors.groups()) if errors else 0)
    return int(done.group(1)) - (int(bad.group(1)) if bad else 0), failed


REQUESTS_CAP_S = 600  # a wrk run that counts its requests stops after this many seconds anyway


def run(store: Path, swaps: int = 16, settle_s: float = 3.0, warm_s: float = 5.0, log: Path | None = None,
        env: dict[str, str] | None = None, connections: int = 0, requests: int = 0,
        progress: bool = False) -> dict[str, Any]:
    """Serve `store`, keep requests flowing, publish `swaps` versions one by one; RSS after each (MiB).

    connections 0: one client thread posting one request at a time; N > 0: wrk with N connections, one run per swap
    started just before the version is published, lasting `settle_s` seconds, or with `requests`, until that many
    have been answered (then `settle_s` seconds without requests): every version then answers as many new
    histories, so its answer cache (ELCREC_ANSWER_CACHE) holds as many entries when RSS is read."""
    base_name = Store(store).current()
    assert base_name is not None, f"{store} has no CURRENT version"
    art = Store(store).load(base_name, "cpu")
    model, item_ids, info = art.model, art.item_ids, art.info  # each new version says what the base one says
    base_items = model.item_embeddings.weight.detach().clone()
    items = [i for i in item_ids if i is not None]

    log = log or store.parent / "serve.log"
    child_env = dict(os.environ)
    child_env.setdefault("ELCREC_POLL_INTERVAL_S", "0.2")
    child_env.update(env or {})
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), child_env.get("PYTHONPATH")]))
    proc, base = _serve(store, log, child_env)
    traffic = Traffic(base, items, model.cfg.max_len)
    client = threading.Thread(target=traffic.run, name="swap-traffic", daemon=True)
    script = wrk_script(store.parent / "swap_memory.lua", items, model.cfg.max_len, 0, requests) if connections else None
    samples: list[dict[str, Any]] = []

    def window(seconds: float) -> subprocess.Popen[str] | None:
        if script is None:
            return None
        marker_of(script).unlink(missing_ok=True)
        return start_wrk(base, script, connections, REQUESTS_CAP_S if requests else seconds)

    def wait(load: subprocess.Popen[str] | None, seconds: float) -> None:
        if load is None:
            time.sleep(seconds)
            return
        if requests:  # wrk runs until told: SIGINT once the script has counted its answers (it then reports)
            assert script is not None
            while not marker_of(script).exists() and load.poll() is None:
                time.sleep(0.05)
            load.send_signal(signal.SIGINT)
        ok, failed = finish_wrk(load)
        traffic.ok += ok
        traffic.failed += failed
        if requests:
            time.sleep(seconds)

    try:
        if script is None:
            client.start()
        wait(window(warm_s), warm_s)
        samples.append({"swap": 0, "version": base_name, "rss_mib": round(rss_mib(proc.pid), 2),
                        "requests_ok": traffic.ok})
        for n in range(1, swaps + 1):
            with torch.no_grad():
                noise = torch.randn(base_items.shape, generator=torch.Generator().manual_seed(n)) * 0.01
                model.item_embeddings.weight.copy_(base_items + noise)
            load = window(settle_s)
            started = time.monotonic()
            name = Store(store).write_version(model, item_ids, info).name
            while _served_version(base) != name:
                if proc.poll() is not None:
                    raise SystemExit(f"elcrec serve exited during swap {n}:\n{log.read_text()[-3000:]}")
                if time.monotonic() - started > 120:
                    raise SystemExit(f"the service did not serve {name} within 120 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.05)
            swap_s = time.monotonic() - started
            wait(load, settle_s)
            samples.append({"swap": n, "version": name, "rss_mib": round(rss_mib(proc.pid), 2),
                            "swap_s": round(swap_s, 2), "requests_ok": traffic.ok})
            if progress:
                print(f"swap {n:2d} -> {name}: RSS {samples[-1]['rss_mib']:.1f} MiB "
                      f"({traffic.ok} answers so far)", flush=True)
    finally:
        traffic.stop.set()
        if client.is_alive():
            client.join(timeout=30)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"samples": samples, "requests_ok": traffic.ok, "requests_failed": traffic.failed,
            "errors": traffic.errors[:5], "connections": connections,
            "config": {"n_items": model.cfg.n_items, "d": model.cfg.d, "n_layers": model.cfg.n_layers,
                       "max_len": model.cfg.max_len, "n_intents": model.cfg.n_intents}}


def report(result: dict[str, Any], fit_from: int = 4) -> dict[str, Any]:
    """The figures of a run: RSS before, after the first and after the last swap, growth, and the slope."""
    samples = result["samples"]
    after = [s for s in samples if s["swap"] >= 1]
    fitted = [s for s in after if s["swap"] >= fit_from]
    per_swap = slope([float(s["swap"]) for s in fitted], [s["rss_mib"] for s in fitted])
    return {
        "swaps": len(after),
        "rss_before_mib": samples[0]["rss_mib"],
        "rss_after_first_mib": after[0]["rss_mib"] if after else None,
        "rss_after_last_mib": after[-1]["rss_mib"] if after else None,
        "growth_first_to_last_mib": round(after[-1]["rss_mib"] - after[0]["rss_mib"], 2) if after else None,
        "fit_from_swap": fit_from,
        "slope_mib_per_swap": round(per_swap, 3),
        "requests_ok": result["requests_ok"],
        "requests_failed": result["requests_failed"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swaps", type=int, default=16)
    parser.add_argument("--artifacts", type=Path, help="store whose CURRENT version to start from (copied)")
    parser.add_argument("--items", type=int, default=12000, help="catalog size of the random model")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of requests after a swap before RSS")
    parser.add_argument("--warm", type=float, default=5.0, help="seconds of requests before the first swap")
    parser.add_argument("--connections", type=int, default=0,
                        help="wrk connections posting new histories (0: one Python client thread)")
    parser.add_argument("--requests", type=int, default=0,
                        help="with --connections: requests after each swap (then --settle seconds idle) instead of "
                             "--settle seconds of requests")
    parser.add_argument("--fit-from", type=int, default=4, help="first swap of the slope's fit")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.swaps < 1:
        parser.error("--swaps must be at least 1")
    if args.requests and not args.connections:
        parser.error("--requests needs --connections")
    if args.connections and not shutil.which("wrk"):
        parser.error("--connections needs wrk (apt-get install wrk)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the service on the way out (finally blocks)
    workdir = Path(tempfile.mkdtemp(prefix="elcrec-swaps-"))
    try:
        store = workdir / "store"
        setup(store, args.artifacts, args.items)
        result = run(store, args.swaps, args.settle, args.warm, workdir / "serve.log",
                     connections=args.connections, requests=args.requests, progress=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures = report(result, args.fit_from)
    env = {k: v for k, v in os.environ.items() if k.startswith("ELCREC_")}
    out = {"summary": figures, **result, "source": str(args.artifacts) if args.artifacts else "random",
           "settle_s": args.settle, "requests_per_swap": args.requests, "env": env, "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__,
                                                          "python": platform.python_version()}}
    print(json.dumps(figures, indent=2))
    write_json(out, args.out)


if __name__ == "__main__":
    main()
