"""The service's exceptions and the responses they become: one mapping for the app and the fast path."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from elcrec.service.history import HistoryUnavailable


class InvalidInput(Exception):
    """A request the service understood but cannot serve as asked (-> 422)."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class NotFound(Exception):
    pass


def error_response(exc: Exception) -> JSONResponse | None:
    """The JSON response for one of the service's expected errors; None for anything else (a 500)."""
    if isinstance(exc, InvalidInput):
        return JSONResponse({"detail": exc.message, **exc.extra}, status_code=422)
    if isinstance(exc, NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    if isinstance(exc, HistoryUnavailable):
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})
    if isinstance(exc, HTTPException):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return None
