"""History reads side by side, in one run against one redis-server: the service's own pipelined RESP connection
(service/resp.py, replies parsed by hiredis) against redis-py's asyncio client (with hiredis installed, as here).

    python -m bench.redis_reads [--users 1000] [--rounds 2000] [--out docs/bench/redis-reads.json]

For batch sizes 1, 8, 32 and 128 (the history reads coalesced into one pipeline by service/history.py), each reader
reads the same users' 20-item lists; reported: CPU time of this process and wall time per batch, and per read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis
from redis.utils import HIREDIS_AVAILABLE

from bench import write_json
from bench.harness import free_port, wait_until
from elcrec.model.events import history_key
from elcrec.service.history import _READ_LIST_AS_JSON
from elcrec.service.resp import PipelinedReader

BATCHES = (1, 8, 32, 128)


async def measure(name: str, read: Callable[[list[str]], Awaitable[list[Any]]], users: list[str], rounds: int,
                  batch: int) -> dict[str, Any]:
    rng = random.Random(batch)
    draws = [rng.sample(users, batch) for _ in range(rounds)]
    for keys in draws[:50]:  # warm-up: connections open, code paths hot
        await read(keys)
    cpu, wall = time.process_time(), time.perf_counter()
    for keys in draws:
        replies = await read(keys)
        assert len(replies) == batch and all(len(r) == 20 for r in replies)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"reader": name, "batch": batch, "cpu_ms_per_batch": cpu / rounds * 1e3,
            "wall_ms_per_batch": wall / rounds * 1e3, "cpu_us_per_read": cpu / rounds / batch * 1e6}


async def run(url: str, users: list[str], rounds: int) -> list[dict[str, Any]]:
    fast = PipelinedReader(url, 1.0)
    client = Redis.from_url(url, decode_responses=True)

    async def ours(keys: list[str]) -> list[Any]:
        return await fast.run([("LRANGE", history_key(u), "0", "-1") for u in keys])

    async def redis_py_lrange(keys: list[str]) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for u in keys:
            pipe.lrange(history_key(u), 0, -1)
        return await pipe.execute()

    async def redis_py_json(keys: list[str]) -> list[Any]:  # the service's fallback for rediss:// and unix sockets
        pipe = client.pipeline(transaction=False)
        for u in keys:
            pipe.eval(_READ_LIST_AS_JSON, 1, history_key(u))
        return [json.loads(r) for r in await pipe.execute()]

    rows = []
    for batch in BATCHES:
        for name, read in (("service/resp.py", ours), ("redis-py LRANGE", redis_py_lrange),
                           ("redis-py EVAL as JSON", redis_py_json)):
            rows.append(await measure(name, read, users, rounds, batch))
            r = rows[-1]
            print(f"{name:<22} batch {batch:>3}: CPU {r['cpu_ms_per_batch']:.3f} ms a batch "
                  f"({r['cpu_us_per_read']:.0f} us a read), wall {r['wall_ms_per_batch']:.3f} ms", flush=True)
    fast.close()
    await client.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    server = shutil.which("redis-server")
    if server is None:
        parser.error("redis-server is not installed")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="elcrec-reads-"))
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        def up() -> bool:
            try:
                with redis.Redis.from_url(url) as db:
                    return bool(db.ping())
            except redis.ConnectionError:
                return False

        wait_until(up, 10, "redis-server")
        users = [f"bench-{u}" for u in range(args.users)]
        with redis.Redis.from_url(url) as db:
            pipe = db.pipeline(transaction=False)
            for u in users:
                pipe.rpush(history_key(u), *(f"item-{random.randrange(12000)}" for _ in range(20)))
            pipe.execute()
        rows = asyncio.run(run(url, users, args.rounds))
        write_json({"hiredis": HIREDIS_AVAILABLE, "redis_py": redis.__version__, "rounds": args.rounds, "rows": rows},
                   args.out)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
