"""The v1 HTTP API: each route validates, makes one call and returns its result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from model.artifact import ArtifactError
from service.deps import AdminDep, BundleDep, HolderDep, RecommenderDep
from service.schemas import (
    EventsRequest,
    EventsResponse,
    Id,
    IntentDetail,
    InvalidRequest,
    ModelInfo,
    Problem,
    RecommendRequest,
    RecommendResponse,
    ReloadConflict,
    ReloadResponse,
    UserIntentResponse,
)

# Every status a route can answer is documented with its body, so that the OpenAPI document is a contract a
# client (or a fuzzer: tests/reliability/test_api_fuzz.py) can check responses against.
Responses = dict[int | str, dict[str, Any]]
UNAVAILABLE: Responses = {
    503: {"model": Problem, "description": "No model loaded, starting or stopping, or Redis unreachable"}
}
INVALID: Responses = {422: {"model": InvalidRequest, "description": "Invalid parameters or body"}}
BODY: Responses = {
    **INVALID,
    400: {"model": Problem, "description": "The body cannot be decoded"},
    413: {"model": Problem, "description": "The body is larger than ELCREC_MAX_BODY_BYTES"},
}
NOT_FOUND: Responses = {404: {"model": Problem, "description": "No such user history or intent"}}
ADMIN: Responses = {
    401: {"model": Problem, "description": "No 'Authorization: Bearer <token>' header"},
    403: {"model": Problem, "description": "Wrong token"},
    404: {"model": Problem, "description": "Admin endpoints disabled (ELCREC_ADMIN_TOKEN unset)"},
    409: {"model": ReloadConflict, "description": "The store's CURRENT version was refused"},
}

router = APIRouter(prefix="/v1", responses=UNAVAILABLE)

UserIdPath = Annotated[Id, Path(description="1-128 visible ASCII characters (no whitespace)")]


@router.post("/recommend", responses=BODY)
async def recommend(
    req: RecommendRequest, bundle: BundleDep, recommender: RecommenderDep
) -> RecommendResponse:
    return await recommender.recommend(bundle, req)


@router.post("/users/{user_id}/events", responses=BODY)
async def add_events(
    user_id: UserIdPath, req: EventsRequest, bundle: BundleDep, recommender: RecommenderDep
) -> EventsResponse:
    return await recommender.add_events(bundle, user_id, req.item_ids)


@router.get("/users/{user_id}/intent", responses={**INVALID, **NOT_FOUND})
async def user_intent(
    user_id: UserIdPath, bundle: BundleDep, recommender: RecommenderDep
) -> UserIntentResponse:
    return await recommender.user_intent(bundle, user_id)


@router.get("/intents/{intent_id}", responses={**INVALID, **NOT_FOUND})
async def intent_detail(
    intent_id: int, bundle: BundleDep, recommender: RecommenderDep, k: Annotated[int, Query()] = 10
) -> IntentDetail:
    return recommender.intent_detail(bundle, intent_id, k)


@router.get("/model")
async def model_info(bundle: BundleDep, recommender: RecommenderDep) -> ModelInfo:
    return recommender.model_info(bundle)


@router.post("/admin/reload", responses=ADMIN)
async def reload(_: AdminDep, holder: HolderDep) -> ReloadResponse:
    try:
        result = await holder.reload(force=True)
    except ArtifactError as exc:
        serving = holder.bundle.version if holder.bundle else None
        raise HTTPException(409, {"message": f"refused the new version: {exc}", "serving": serving}) from exc
    return ReloadResponse(changed=result.changed, version=result.version, previous=result.previous)
