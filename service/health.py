"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.deps import ResourcesDep
from service.history import HistoryUnavailable

router = APIRouter()


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/health/ready")
async def ready(resources: ResourcesDep) -> JSONResponse:
    holder, history = resources.holder, resources.history
    bundle = holder.bundle
    store: dict[str, Any] = {"backend": history.backend, "ok": True}
    try:
        await history.ping()
    except HistoryUnavailable as exc:
        store.update(ok=False, error=str(exc))
    details = {
        "ready": bundle is not None and store["ok"],
        "model": {"loaded": bundle is not None, "version": bundle.version if bundle else None},
        "history": store,
        "reload": holder.status(),
    }
    return JSONResponse(details, status_code=200 if details["ready"] else 503)


@router.get("/metrics")
async def metrics(resources: ResourcesDep) -> Response:
    return Response(resources.metrics.render(), media_type=resources.metrics.content_type)
