"""Micro-batching: concurrent requests share one encoder call, run on the event loop or on one worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from elcrec.service.answer_cache import key_of
from elcrec.service.bundle import ModelBundle
from elcrec.service.inference import run_batch
from elcrec.service.metrics import Metrics
from elcrec.service.queries import Answer, Query

log = logging.getLogger("elcrec.engine")

_Pending = tuple[ModelBundle, Query, "asyncio.Future[Answer]"]


class Engine:
    """Collects queries for up to `window_s` (or until `max_size` are waiting) when idle, but only while other
    requests are on their way to it (fetching a history from Redis: `on_the_way`): a lone request does not wait
    for company that is not coming. While a batch runs, new queries pile up and form the next batch at once,
    so load raises the batch size, not the wait."""

    def __init__(self, window_s: float, max_size: int, metrics: Metrics, thread: bool = False) -> None:
        self.window_s = window_s
        self.max_size = max_size
        self.metrics = metrics
        self._pending: list[_Pending] = []
        self._incoming = 0  # requests that will call infer as soon as their history arrives
        self._running: list[_Pending] = []
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Inline (default), a batch runs on the event loop: no thread hand-off and no contention for the GIL,
        # which on a few CPU cores costs more than the loop loses while blocked (requests arriving meanwhile
        # wait in the socket buffers and form the next batch). With `thread`, one worker thread runs the
        # batches one after another (torch keeps its own intra-op threads): for batches that take long.
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="elcrec-infer") if thread else None
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="elcrec-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, _, fut in self._pending + self._running:
            if not fut.done():
                fut.set_exception(RuntimeError("the inference engine is shutting down"))
        self._pending.clear()
        self._running.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @contextlib.contextmanager
    def on_the_way(self) -> Iterator[None]:
        """Wrap a request's last await before `infer`: the batcher waits (up to the window) for it."""
        self._incoming += 1
        try:
            yield
        finally:
            self._incoming -= 1
            if self._incoming == 0:
                self._full.set()  # everyone expected has arrived (or failed): no reason to wait longer

    async def infer(self, bundle: ModelBundle, query: Query) -> Answer:
        if self._task is None or self._task.done():
            raise RuntimeError("the inference engine is not running")
        key = None
        if bundle.answers.capacity:  # a repeat of an answered query skips the batch (service/answer_cache.py)
            key = key_of(query)
            cached = bundle.answers.get(key)
            self.metrics.answer_cache.labels("miss" if cached is None else "hit").inc()
            if cached is not None:
                return cached
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((bundle, query, fut))
        self._wake.set()
        if len(self._pending) >= self.max_size:
            self._full.set()
        answer = await fut
        if key is not None:
            bundle.answers.put(key, answer)
        return answer

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        backlog = False
        while True:
            await self._wake.wait()
            if not backlog and len(self._pending) < self.max_size:
                if self.window_s > 0 and self._incoming > 0:
                    self._full.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), self.window_s)
                else:  # one turn of the loop: requests already read from their sockets join this batch
                    await asyncio.sleep(0)
            batch, self._pending = self._pending[: self.max_size], self._pending[self.max_size :]
            self._full.clear()
            if not self._pending:
                self._wake.clear()
            batch = [p for p in batch if not p[2].done()]  # drop requests whose clients went away
            if batch:
                self._running = batch
                await self._run(loop, batch)
                self._running = []
            # Queries that arrived during the run have waited already: no window for them.
            backlog = bool(self._pending)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        groups: dict[int, list[_Pending]] = {}
        for item in batch:  # normally one group; two while a reload swaps the model
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            start = time.perf_counter()
            try:
                queries = [q for _, q, _ in items]
                if self._executor is None:
                    answers = run_batch(items[0][0], queries)
                else:
                    answers = await loop.run_in_executor(self._executor, run_batch, items[0][0], queries)
            except Exception as exc:
                log.exception("inference batch of %d failed", len(items))
                for _, _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.metrics.batch_size.observe(len(items))
            self.metrics.batch_seconds.observe(time.perf_counter() - start)
            for (_, _, fut), answer in zip(items, answers, strict=True):
                if not fut.done():
                    fut.set_result(answer)
