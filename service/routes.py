"""The v1 HTTP API: each route validates, makes one call and returns its result."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import ValidationError
from pydantic_core import to_json

from elcrec.model.artifact import ArtifactError
from elcrec.service.deps import AdminDep, BundleDep, HolderDep, RecommenderDep, Resources, ResourcesDep
from elcrec.service.schemas import (
    EventsRequest,
    EventsResponse,
    Id,
    IntentDetail,
    IntentList,
    InvalidRequest,
    ItemInfo,
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
NOT_FOUND: Responses = {404: {"model": Problem, "description": "No such user history, intent or item"}}
ADMIN: Responses = {
    401: {"model": Problem, "description": "No 'Authorization: Bearer <token>' header"},
    403: {"model": Problem, "description": "Wrong token"},
    404: {"model": Problem, "description": "Admin endpoints disabled (ELCREC_ADMIN_TOKEN unset)"},
    409: {"model": ReloadConflict, "description": "The store's CURRENT version was refused"},
}

router = APIRouter(prefix="/v1", responses=UNAVAILABLE)

UserIdPath = Annotated[Id, Path(description="1-128 visible ASCII characters (no whitespace)")]
ItemIdPath = Annotated[Id, Path(description="An external item id: 1-128 visible ASCII characters (no whitespace)")]
FieldsQuery = Annotated[
    str | None,
    Query(max_length=4096, description="Catalog fields to return with each item, comma-separated (e.g. title,genre)"),
]


def _field_list(fields: str | None) -> list[str] | None:
    return None if fields is None else [f.strip() for f in fields.split(",") if f.strip()]


# The hot path reads and writes its JSON itself: FastAPI's body parameter would parse the body into Python
# objects before validating them, and re-validate the response model before serialising it. The route below
# documents it; service/fastpath.py serves it without FastAPI's routing layers (the same function answers).
_RECOMMEND_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": RecommendRequest.model_json_schema()}},
    }
}
RECOMMEND_PATH = "/v1/recommend"


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True  # as FastAPI: no content type, read as JSON
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or (main.startswith("application/") and main.endswith("+json"))


def _json(payload: Any, status: int) -> Response:
    # 1e400 parses to inf: written as null rather than as invalid JSON
    return Response(to_json(payload, inf_nan_mode="null", fallback=str), status, media_type="application/json")


def _body_errors(exc: ValidationError) -> Response:
    """FastAPI's own format for body errors: locations start with "body"."""
    errors = []
    for e in exc.errors(include_url=False):
        error: dict[str, Any] = {"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]}
        if e["type"] != "json_invalid":  # never the raw bytes back; other inputs came out of valid JSON
            error["input"] = e.get("input")
        if "ctx" in e:
            error["ctx"] = {
                k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in e["ctx"].items()
            }
        errors.append(error)
    return _json({"detail": errors}, 422)


_NOT_JSON = {"type": "content_type", "loc": ["body"], "msg": "the body must be JSON (application/json)", "input": None}


async def recommend_body(resources: Resources, content_type: str | None, body: bytes) -> Response:
    """POST /v1/recommend from its raw body. Raises what the app's exception handlers answer (errors.py)."""
    bundle = resources.holder.bundle  # once: a reload swapping it mid-request does not affect this request
    if bundle is None:
        raise HTTPException(503, "no model is loaded yet")
    if not _is_json(content_type):
        return _json({"detail": [_NOT_JSON]}, 422)
    try:
        req = RecommendRequest.model_validate_json(body or b"null")
    except ValidationError as exc:
        return _body_errors(exc)
    answer = await resources.recommender.recommend(bundle, req)
    return Response(answer.__pydantic_serializer__.to_json(answer), media_type="application/json")


@router.post(RECOMMEND_PATH.removeprefix("/v1"), response_model=RecommendResponse, responses=BODY,
             openapi_extra=_RECOMMEND_BODY)
async def recommend(request: Request, resources: ResourcesDep) -> Response:
    return await recommend_body(resources, request.headers.get("content-type"), await request.body())


@router.post("/users/{user_id}/events", responses=BODY)
async def add_events(
    user_id: UserIdPath, req: EventsRequest, bundle: BundleDep, recommender: RecommenderDep
) -> EventsResponse:
    return await recommender.add_events(bundle, user_id, req.item_ids)


@router.get("/users/{user_id}/intent", responses={**INVALID, **NOT_FOUND})
async def user_intent(
    user_id: UserIdPath, bundle: BundleDep, recommender: RecommenderDep, fields: FieldsQuery = None
) -> UserIntentResponse:
    return await recommender.user_intent(bundle, user_id, _field_list(fields))


@router.get("/intents", responses=INVALID)
async def intent_list(
    bundle: BundleDep,
    recommender: RecommenderDep,
    offset: Annotated[int, Query(ge=0, description="Intents to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Intents on this page")] = 20,
    k: Annotated[int, Query(description="Characteristic items per intent")] = 5,
    order: Annotated[Literal["share", "id"], Query(description="Largest share of users first, or by id")] = "share",
    fields: FieldsQuery = None,
    category: Annotated[
        str | None,
        Query(max_length=4096, description="Only the intents whose label names this category, as FIELD:VALUE "
              "(e.g. genre:Comedy)"),
    ] = None,
) -> IntentList:
    return recommender.intent_list(bundle, offset, limit, k, order, _field_list(fields), category)


@router.get("/intents/{intent_id}", responses={**INVALID, **NOT_FOUND})
async def intent_detail(
    intent_id: int, bundle: BundleDep, recommender: RecommenderDep, k: Annotated[int, Query()] = 10,
    fields: FieldsQuery = None,
) -> IntentDetail:
    return recommender.intent_detail(bundle, intent_id, k, _field_list(fields))


@router.get("/items/{item_id}", responses={**INVALID, **NOT_FOUND})
async def item(item_id: ItemIdPath, bundle: BundleDep, recommender: RecommenderDep) -> ItemInfo:
    return recommender.item(bundle, item_id)


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
