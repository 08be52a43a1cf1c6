"""What routes declare: the app's resources (built in lifespan) as Annotated dependencies."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from elcrec.service.bundle import ModelBundle
from elcrec.service.engine import Engine
from elcrec.service.history import HistoryStore
from elcrec.service.metrics import Metrics
from elcrec.service.recommender import Recommender
from elcrec.service.reload import ModelHolder
from elcrec.service.settings import Settings


@dataclass
class Resources:
    settings: Settings
    metrics: Metrics
    holder: ModelHolder
    engine: Engine
    history: HistoryStore
    recommender: Recommender


def app_resources(app: Any) -> Resources:
    resources: Resources | None = getattr(app.state, "resources", None)
    if resources is None:
        raise HTTPException(503, "the service is starting or stopping")
    return resources


def _resources(request: Request) -> Resources:
    return app_resources(request.app)


# Each dependency reads the request directly rather than through a shared sub-dependency, and is
# `async def`: FastAPI runs plain `def` dependencies in a thread pool, and resolving every level of
# dependency costs about as much as the rest of a small request.
async def get_resources(request: Request) -> Resources:
    return _resources(request)


async def get_settings(request: Request) -> Settings:
    return _resources(request).settings


async def get_recommender(request: Request) -> Recommender:
    return _resources(request).recommender


async def get_holder(request: Request) -> ModelHolder:
    return _resources(request).holder


async def get_bundle(request: Request) -> ModelBundle:
    # Read once per request: a reload swapping the reference mid-request does not affect this request.
    bundle = _resources(request).holder.bundle
    if bundle is None:
        raise HTTPException(503, "no model is loaded yet")
    return bundle


async def get_metrics(request: Request) -> Metrics:
    return _resources(request).metrics


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
BundleDep = Annotated[ModelBundle, Depends(get_bundle)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


# Declared as an OpenAPI security scheme (the docs and fuzzers know the admin routes need it); the check is ours.
_bearer = HTTPBearer(auto_error=False, scheme_name="AdminToken", description="ELCREC_ADMIN_TOKEN")


async def require_admin(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Bearer token check. The token is compared in constant time and never logged or echoed."""
    if settings.admin_token is None:
        raise HTTPException(404, "admin endpoints are disabled: ELCREC_ADMIN_TOKEN is not set")
    if credentials is None:  # no header, another scheme, or an empty token
        raise HTTPException(
            401,
            "admin endpoints need 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.admin_token.get_secret_value().encode()
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(403, "the admin token is wrong")


AdminDep = Annotated[None, Depends(require_admin)]
