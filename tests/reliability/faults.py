"""Helpers for the fault tests: a redis-server that keeps its data across a kill (AOF, as deployed), and a
closed-loop request generator that records every call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.service import RedisServer


class DurableRedis(RedisServer):
    """redis-server with the deployment's persistence (docker-compose.yml, deploy/k8s/redis.yaml): AOF with
    appendfsync everysec. Restarted on the same port and directory, it replays the AOF."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def options(self) -> list[str]:
        return ["--dir", str(self.directory), "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]


@dataclass
class Call:
    kind: str
    start: float
    end: float
    status: int
    body: Any
    retry_after: str | None
    item: str | None = None  # the unique item an events call carried

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Load:
    """Workers calling the API in a loop until stopped; `calls` in completion order."""

    client: httpx.AsyncClient
    calls: list[Call] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _one(self, kind: str, worker: int, n: int) -> Call:
        c, item = self.client, None
        loop = asyncio.get_running_loop()
        start = loop.time()
        if kind == "history":  # carries its own history: no Redis involved
            r = await c.post("/v1/recommend", json={"history": ["i1", "i2", "i3"], "k": 5})
        elif kind == "user":
            r = await c.post("/v1/recommend", json={"user_id": f"reader-{worker}", "k": 5})
        elif kind == "intent":
            r = await c.get(f"/v1/users/reader-{worker}/intent")
        else:
            item = f"ev-{worker}-{n}"
            r = await c.post(f"/v1/users/writer-{worker}/events", json={"item_ids": [item, "i7"]})
        return Call(kind, start, loop.time(), r.status_code, r.json(), r.headers.get("retry-after"), item)

    async def worker(self, kind: str, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            self.calls.append(await self._one(kind, worker, n))
            await asyncio.sleep(0.002)

    def of(self, kind: str, after: float = float("-inf"), before: float = float("inf")) -> list[Call]:
        return [c for c in self.calls if c.kind == kind and after <= c.start and c.end <= before]
