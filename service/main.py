"""The FastAPI app: resources built in lifespan, routes, error mapping; and `serve` for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import faiss
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import ValidationError

from elcrec.model.artifact import ArtifactError, resolve
from elcrec.service import health, routes
from elcrec.service.bundle import LoadOptions, pick_device
from elcrec.service.deps import Resources
from elcrec.service.engine import Engine
from elcrec.service.errors import InvalidInput, NotFound, error_response
from elcrec.service.fastpath import RecommendFastPath
from elcrec.service.history import HistoryStore, HistoryUnavailable, MemoryHistory, RedisHistory
from elcrec.service.metrics import Metrics
from elcrec.service.middleware import BodyLimit, RequestMetrics
from elcrec.service.recommender import Recommender
from elcrec.service.reload import ModelHolder
from elcrec.service.settings import Settings, default_threads, usable_cpus

log = logging.getLogger("elcrec.service")
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def _history(settings: Settings, metrics: Metrics) -> HistoryStore:
    if settings.redis_url is None:
        return MemoryHistory(settings.memory_max_users)
    return RedisHistory(
        settings.redis_url,
        settings.redis_timeout_s,
        settings.redis_max_connections,
        metrics,
        settings.events_stream_maxlen,
        settings.redis_wait_replicas,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threads = settings.threads or default_threads(usable_cpus())
        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)
        holder = ModelHolder(settings.artifacts, pick_device(settings.device), metrics,
                             LoadOptions.from_settings(settings))
        await holder.reload(force=True)  # no model, no service: ArtifactError stops the start-up
        history = _history(settings, metrics)
        engine = Engine(
            settings.batch_window_ms / 1000, settings.batch_max_size, metrics, settings.inference_thread
        )
        engine.start()
        recommender = Recommender(settings, engine, history, metrics)
        app.state.resources = Resources(settings, metrics, holder, engine, history, recommender)
        watcher = asyncio.create_task(holder.watch(settings.poll_interval_s), name="elcrec-model-watch")
        log.info(
            "serving %s from %s on %s",
            holder.bundle.version if holder.bundle else None,
            settings.artifacts,
            holder.device,
        )
        # Everything alive now (torch, the app, the model) lives as long as the process: out of the
        # collector's generations, so that its periodic passes during requests stay short.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            app.state.resources = None
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await engine.close()
            await history.close()

    app = FastAPI(
        # Metrics are Prometheus (service/metrics.py). FastAPI's native OpenTelemetry stays off unless asked
        # for: while no provider is configured it still looks them up on every request.
        telemetry=None if settings.otel else _NO_TELEMETRY,
        title="ELCRec recommender",
        version="1",
        lifespan=lifespan,
        description="Sequential recommendations with intents (ELCRec), user histories and events.",
    )
    app.state.resources = None
    app.include_router(routes.router)
    app.include_router(health.router)
    app.add_middleware(RecommendFastPath)  # innermost: under the body limit and the request metrics
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: also times 413s

    async def handled(_: Request, exc: Exception) -> JSONResponse:
        response = error_response(exc)
        assert response is not None  # registered below for these types only
        return response

    for kind in (InvalidInput, NotFound, HistoryUnavailable):
        app.add_exception_handler(kind, handled)

    return app


def app_from_env() -> FastAPI:
    """The app of one worker process (`--workers` > 1): settings from ELCREC_* variables, as its parent's."""
    return create_app(Settings())


def serve(artifacts: Path, host: str, port: int, workers: int) -> None:
    """Run the service with uvicorn; the remaining settings come from ELCREC_* variables. (Where to listen
    and how many processes have their defaults in one place, `elcrec serve`.)

    With workers > 1, uvicorn starts that many processes on the port (each loads the model and watches the
    store by itself; histories need Redis to be shared between them)."""
    try:
        settings = Settings(artifacts=artifacts)
        resolve(settings.artifacts)  # a clear message now rather than a failed start-up later
    except (ValidationError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if workers > 1:
        if settings.redis_url is None:
            log.warning("%d workers with in-process history stores: each worker sees only its own users", workers)
        os.environ["ELCREC_ARTIFACTS"] = str(settings.artifacts)  # the workers read their settings from it
    uvicorn.run(
        "elcrec.service.main:app_from_env" if workers > 1 else create_app(settings),
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=host,
        port=port,
        log_level=settings.log_level,
        access_log=False,  # per-request log lines cost more than the request; latency is in /metrics
        server_header=False,
    )
