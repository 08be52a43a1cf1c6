"""POST /v1/recommend without FastAPI's routing layers: the hot path, answered by routes.recommend_body.

Between the user middlewares (request metrics, body limit: both still apply) and Starlette's exception
middleware, router and FastAPI's request handling sit about a dozen awaits and objects per request: on a
2-core machine they cost as much as the model itself at load. This middleware answers POST /v1/recommend
directly with the same function the documented FastAPI route calls, and maps the same exceptions to the same
responses (service/errors.py); anything else goes on to the app unchanged.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elcrec.service import routes
from elcrec.service.deps import app_resources
from elcrec.service.errors import error_response


class RecommendFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The documented route: its template labels the request metrics as routing would have.
        self.route = next(r for r in routes.router.routes if getattr(r, "path", None) == routes.RECOMMEND_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != routes.RECOMMEND_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        try:
            content_type = None
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value.decode("latin-1")
            body = await _read_body(receive)
            response = await routes.recommend_body(app_resources(scope["app"]), content_type, body)
        except Exception as exc:  # the app's handlers, or re-raised to the server-error middleware (500)
            mapped = error_response(exc)
            if mapped is None:
                raise
            response = mapped
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
