"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from elcrec.service.deps import ResourcesDep
from elcrec.service.history import HistoryUnavailable
from elcrec.service.schemas import Problem, Readiness

router = APIRouter()
# The metrics are text; the 503 of a service starting or stopping is JSON like every other error.
_STARTING: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The service is starting or stopping",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness | Problem, "description": "Not ready: no model, or Redis unreachable"}},
)
async def ready(resources: ResourcesDep) -> JSONResponse:
    holder, history = resources.holder, resources.history
    bundle = holder.bundle
    store: dict[str, Any] = {"ok": True}
    try:
        await history.ping()
    except HistoryUnavailable as exc:
        store.update(ok=False, error=str(exc))
    store["backend"] = history.backend  # after the ping: a Redis says then whether it is a cluster
    details = {
        "ready": bundle is not None and store["ok"],
        "model": {"loaded": bundle is not None, "version": bundle.version if bundle else None},
        "history": store,
        "reload": holder.status(),
    }
    return JSONResponse(details, status_code=200 if details["ready"] else 503)


@router.get("/metrics", response_class=PlainTextResponse, responses=_STARTING)
async def metrics(resources: ResourcesDep) -> Response:
    return Response(resources.metrics.render(), media_type=resources.metrics.content_type)
