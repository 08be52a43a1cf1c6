"""Where a new request's time goes: the service sampled by py-spy under load, every request new.

    python -m bench.where --artifacts STORE --data FILE --py-spy PATH/py-spy [--duration 10] [--out FILE]

Starts a redis-server and `elcrec serve` (settings from ELCREC_* variables) and measures the bare endpoint's CPU
a request (GET /health/live, 3 s). Then drives POST /v1/recommend with histories never sent before (bench/load.py's
pool, each once) at --connections, and meanwhile samples the service's stacks with py-spy (`record --format raw`:
the samples of a busy thread). The samples of the event loop's thread are sorted into the parts of a request
(PARTS: the innermost frame a rule names decides), and each part's share is turned into milliseconds a request by
the process's CPU time (/proc) over the requests answered. The arithmetic of the encoder and the retrieval (FLOPs
and bytes a request, from the model's config and the mean batch size in /metrics) is set against this CPU's
measured peak (bench/peak.py's matmul at the encoder's shape, measured at the end).

py-spy is not a dependency of elcrec: install it anywhere (`pip install --target DIR py-spy`) and pass its path.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench import write_json
from bench.harness import (
    HOST,
    LUA_BODIES_FILE,
    free_port,
    json_line,
    known_items,
    run_wrk,
    start_redis,
    start_service,
    stop_processes,
)
from bench.load import new_histories
from bench.peak import matmul_gflops

# (part, pattern). A sample is the part of the innermost frame of the event loop's thread that a pattern matches;
# a pattern sees "function (file:line) :: the source line" for the service's own files (so that run_batch's and
# recommend_body's statements tell the encoder from the retrieval, the request's JSON from the response's).
PARTS = [
    ("encoder", r"bundle\.encoder\("),
    ("intents", r"distribution\(|pull|near = |\.pool\("),
    ("retrieval", r"search_unseen|steered\(|scores_of|ItemIndex|top_unseen"),
    ("batch input (padding, tensors)", r"left_pad|from_numpy"),
    ("batch results to Python lists", r"^run_batch "),
    ("request JSON parse + validation", r"model_validate_json|valid_id|_check_id"),
    ("response JSON serialisation", r"to_json"),
    ("response objects (pydantic models)", r"BaseModel\.__init__|Recommender\._intent|RecommendResponse|external"),
    ("request checks, item lookup", r"split_known|^Recommender\.recommend|^Recommender\.fields"),
    ("batcher (engine)", r"^Engine\."),
    ("metrics", r"Metric|prometheus|timing_send|tracking_send"),
    ("HTTP (uvloop, httptools, uvicorn, Starlette, middlewares)",
     r"uvicorn|httptools|starlette|fastapi|middleware|fastpath|routes\.py"),
]
HTTP = PARTS[-1][0]
LOOP_IN_C = r"^Runner\.run "  # innermost: uvloop's own C code (sockets, callbacks) under asyncio.Runner
MAIN = "_run_module_as_main"  # the outermost frame of the thread that runs the event loop


def categorise(stack: list[str], source: dict[str, list[str]]) -> str:
    if stack and re.match(LOOP_IN_C, stack[-1]):
        return HTTP
    for frame in reversed(stack):
        text = frame
        m = re.search(r"\((service/\w+\.py):(\d+)\)", frame)
        if m and m.group(1) in source:
            lines = source[m.group(1)]
            text += " :: " + (lines[int(m.group(2)) - 1] if int(m.group(2)) <= len(lines) else "")
        for part, pattern in PARTS:
            if re.search(pattern, text):
                return part
    return "other (asyncio, interpreter)"


def parse_raw(text: str) -> Counter[tuple[str, ...]]:
    """py-spy's raw (collapsed) output: `thread;frame;frame count` per line, outermost first."""
    out: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            out[tuple(stack.split(";"))] += int(count)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def arithmetic(model: dict[str, Any], batch: float, lengths: list[int]) -> dict[str, float]:
    """FLOPs (2 per multiply-add) and bytes a request, for histories of the given lengths (each at most T) in
    batches of `batch`: the encoder as the service runs it (service/fused.py), and the retrieval over the item
    table, whose bytes are read once per batch. Pooling "all" runs every history at full length T. Pooling "real"
    runs packed: the per-position products (q, k, v, out, feed-forward) on the real positions only, the attention
    and the frequency filter over the batch's width, its longest history (estimated by drawing batches from
    `lengths`)."""
    cfg = model["config"]
    d, T, layers, n = cfg["d"], cfg["max_len"], cfg["n_layers"], model["n_items"]
    if cfg.get("pooling", "all") == "all":
        rows = width = float(T)
    else:
        rng = random.Random(0)
        size = max(1, round(batch))
        rows = sum(lengths) / len(lengths)
        width = sum(max(rng.choices(lengths, k=size)) for _ in range(200)) / 200
    mixing = 2 * width * d * (2 if cfg.get("mix_alpha", 0) > 0 else 1)  # scores and context; the filter's low-pass
    per_layer = 2 * rows * (4 * d * d + 2 * 4 * d * d) + 2 * width * mixing  # q, k, v, out; ffn d->4d->d
    weights = layers * (4 * d * d + 8 * d * d) * 4
    return {
        "encoder_rows_per_request": rows,
        "encoder_width": width,
        "encoder_mflop": layers * per_layer / 1e6,
        "encoder_weight_kb_per_request": weights / batch / 1e3,
        "encoder_activation_kb": layers * width * (10 * d + width) * 4 / 1e3,  # one layer's largest states, fp32
        "retrieval_mflop": 2 * d * n / 1e6,
        "retrieval_table_kb_per_request": n * d * 4 / batch / 1e3,
        "intents_mflop": 2 * d * model["n_intents"] / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the model's data file (bench/load.py's pool)")
    parser.add_argument("--py-spy", type=Path, required=True, help="the py-spy executable")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples a second")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw stacks here")
    args = parser.parse_args()
    pool = new_histories(args.data, set(known_items(args.artifacts)), random.Random(1))
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="elcrec-where-") as tmp:
        work = Path(tmp)
        try:
            redis_port = free_port()
            procs.append(start_redis(redis_port))
            env = {**os.environ, "ELCREC_REDIS_URL": f"redis://{HOST}:{redis_port}/0", "ELCREC_LOG_LEVEL": "warning"}
            server, base = start_service(args.artifacts, free_port(), env, work / "serve.log")
            procs.append(server)
            half = len(pool) // 2
            for name, bodies in (("warm", pool[:half]), ("measured", pool[half:])):
                (work / f"{name}.jsonl").write_text("".join(json_line({"history": h, "k": 10}) + "\n" for h in bodies))
            script = LUA_BODIES_FILE % {"file": work / "warm.jsonl", "path": "/v1/recommend"}
            run_wrk(base + "/v1/recommend", args.connections, 3, script)
            model = httpx.get(base + "/v1/model").json()
            cpu0 = cpu_seconds(server.pid)  # the bare endpoint's CPU a request: what 0.5 of its rate allows twice
            live = run_wrk(base + "/health/live", args.connections, 3, None)
            live["cpu_ms_per_request"] = (cpu_seconds(server.pid) - cpu0) * 1e3 / max(live["requests"], 1)
            before = metrics(base)
            spy = subprocess.Popen(
                [str(args.py_spy), "record", "--pid", str(server.pid), "--rate", str(args.rate), "--format", "raw",
                 "--nonblocking", "--duration", str(args.duration + 1), "--output", str(work / "raw.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            time.sleep(0.5)
            cpu0 = cpu_seconds(server.pid)
            script = LUA_BODIES_FILE % {"file": work / "measured.jsonl", "path": "/v1/recommend"}
            load = run_wrk(base + "/v1/recommend", args.connections, args.duration, script)
            cpu = cpu_seconds(server.pid) - cpu0
            after = metrics(base)
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0:
                raise SystemExit(f"error: py-spy failed: {err.decode()[-2000:]}")
            raw = (work / "raw.txt").read_text()
            if args.raw:
                args.raw.write_text(raw)
            stacks = parse_raw(raw)
        finally:
            stop_processes(procs)
    lengths = [min(len(h), int(model["config"]["max_len"])) for h in pool[half:]]
    report = assemble(stacks, load, cpu, before, after, model, lengths)
    report["live"] = live
    print_table(report)
    write_json(report, args.out)


def metrics(base: str) -> dict[str, float]:
    text = httpx.get(base + "/metrics", timeout=10).text
    return {k: float(v) for k, v in re.findall(
        r"^(elcrec_batch_size_(?:sum|count)|elcrec_batch_duration_seconds_sum) ([\d.e+-]+)$", text, re.M)}


def assemble(stacks: Counter[tuple[str, ...]], load: dict[str, Any], cpu: float, before: dict[str, float],
             after: dict[str, float], model: dict[str, Any], lengths: list[int]) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    source = {f"service/{p.name}": p.read_text().splitlines() for p in (root / "service").glob("*.py")}
    parts: Counter[str] = Counter()
    for stack, n in stacks.items():
        if stack and stack[0].startswith(MAIN):  # the other threads (thread pools, the reload watcher) idle
            parts[categorise(list(stack), source)] += n
    busy = sum(parts.values())
    requests = load["requests"]
    batches = after["elcrec_batch_size_count"] - before["elcrec_batch_size_count"]
    batch = (after["elcrec_batch_size_sum"] - before["elcrec_batch_size_sum"]) / max(batches, 1)
    cpu_ms = cpu * 1e3 / max(requests, 1)
    rows = {part: {"share": n / busy, "ms_per_request": n / busy * cpu_ms} for part, n in parts.most_common()}
    work = arithmetic(model, batch, lengths)
    peak = {dtype: matmul_gflops(1600, 64, 256, dtype, 0.3) for dtype in ("fp32", "bf16")}
    for part, mflop in (("encoder", work["encoder_mflop"]), ("retrieval", work["retrieval_mflop"])):
        if part in rows:
            ms = rows[part]["ms_per_request"]
            rows[part]["gflops"] = mflop / ms if ms else 0.0
            rows[part]["share_of_fp32_peak"] = rows[part]["gflops"] / peak["fp32"]
            rows[part]["ms_at_fp32_peak"] = mflop / peak["fp32"]
    return {
        "load": load,
        "requests": requests,
        "cpu_ms_per_request": cpu_ms,
        "mean_batch": batch,
        "batch_ms_mean": (after["elcrec_batch_duration_seconds_sum"] - before["elcrec_batch_duration_seconds_sum"])
        * 1e3 / max(batches, 1),
        "samples": busy,
        "parts": rows,
        "arithmetic": work,
        "peak_gflops_1600x64x256": peak,
        "load_average": os.getloadavg(),
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"GET /health/live: {report['live']['cpu_ms_per_request']:.3f} ms of service CPU a request")
    print(f"{report['requests']} requests, {report['load']['rps']:.0f} req/s, {report['cpu_ms_per_request']:.3f} ms "
          f"of service CPU a request, mean batch {report['mean_batch']:.1f} ({report['batch_ms_mean']:.2f} ms), "
          f"{report['samples']} samples, load average {report['load_average'][0]:.2f}")
    for part, row in report["parts"].items():
        extra = (f"  {row['gflops']:.1f} GFLOP/s = {row['share_of_fp32_peak']:.0%} of fp32 peak"
                 if "gflops" in row else "")
        print(f"  {part:<48} {row['ms_per_request']:6.3f} ms  {row['share']:5.1%}{extra}")
    print("  arithmetic: " + ", ".join(f"{k} {v:.2f}" for k, v in report["arithmetic"].items()))


if __name__ == "__main__":
    main()
