"""The v1 HTTP API: each route validates, makes one call and returns its result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from model.artifact import ArtifactError
from service.deps import AdminDep, BundleDep, HolderDep, RecommenderDep
from service.schemas import (
    EventsRequest,
    EventsResponse,
    Id,
    IntentDetail,
    ModelInfo,
    RecommendRequest,
    RecommendResponse,
    ReloadResponse,
    UserIntentResponse,
)

router = APIRouter(prefix="/v1")

UserIdPath = Annotated[Id, Path(description="1-128 printable characters, no whitespace")]


@router.post("/recommend")
async def recommend(
    req: RecommendRequest, bundle: BundleDep, recommender: RecommenderDep
) -> RecommendResponse:
    return await recommender.recommend(bundle, req)


@router.post("/users/{user_id}/events")
async def add_events(
    user_id: UserIdPath, req: EventsRequest, bundle: BundleDep, recommender: RecommenderDep
) -> EventsResponse:
    return await recommender.add_events(bundle, user_id, req.item_ids)


@router.get("/users/{user_id}/intent")
async def user_intent(
    user_id: UserIdPath, bundle: BundleDep, recommender: RecommenderDep
) -> UserIntentResponse:
    return await recommender.user_intent(bundle, user_id)


@router.get("/intents/{intent_id}")
async def intent_detail(
    intent_id: int, bundle: BundleDep, recommender: RecommenderDep, k: Annotated[int, Query()] = 10
) -> IntentDetail:
    return recommender.intent_detail(bundle, intent_id, k)


@router.get("/model")
async def model_info(bundle: BundleDep, recommender: RecommenderDep) -> ModelInfo:
    return recommender.model_info(bundle)


@router.post("/admin/reload")
async def reload(_: AdminDep, holder: HolderDep) -> ReloadResponse:
    try:
        result = await holder.reload(force=True)
    except ArtifactError as exc:
        serving = holder.bundle.version if holder.bundle else None
        raise HTTPException(409, {"message": f"refused the new version: {exc}", "serving": serving}) from exc
    return ReloadResponse(changed=result.changed, version=result.version, previous=result.previous)
