"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_ID_LENGTH = 128


def _check_id(value: str) -> str:
    # str.isprintable() is False for control characters and every whitespace except " ".
    if not value.isprintable() or " " in value:
        raise ValueError("ids must be printable and contain no whitespace")
    return value


Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(_check_id)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class RecommendRequest(_Request):
    user_id: Id | None = None
    history: list[Id] | None = None  # oldest first; appended to the stored history of user_id
    k: int = Field(10, ge=1)
    exclude_seen: bool = True

    @model_validator(mode="after")
    def _needs_someone(self) -> RecommendRequest:
        if self.user_id is None and self.history is None:
            raise ValueError("give a user_id, a history, or both")
        return self


class EventsRequest(_Request):
    item_ids: list[Id] = Field(min_length=1)  # oldest first


class ScoredItem(BaseModel):
    item_id: str
    score: float | None  # inner product with the user vector; null for popularity fallbacks


class RankedIntent(BaseModel):
    id: int
    distance: float  # squared Euclidean distance between normalised pooled state and center


class Intent(RankedIntent):
    runners_up: list[RankedIntent]


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    intent: Intent | None  # null when there was no known history (cold start)
    strategy: Literal["model", "popular"]
    model_version: str


class EventsResponse(BaseModel):
    user_id: str
    stored: int
    unknown_items: list[str]  # stored, but the served model cannot use them yet


class UserIntentResponse(BaseModel):
    user_id: str
    intent: Intent
    history_length: int  # known items the intent was computed from
    model_version: str


class IntentDetail(BaseModel):
    id: int
    share: float | None  # share of training users in this intent (from the manifest), if known
    items: list[ScoredItem]  # nearest items to the normalised center by inner product
    model_version: str


class ModelInfo(BaseModel):
    version: str
    created_at: str | None
    parent: str | None
    n_items: int
    n_intents: int
    max_len: int
    pooling: str
    config: dict[str, Any]
    origin: dict[str, Any] | None
    data: dict[str, Any] | None
    metrics: dict[str, Any] | None
    device: str
    index: str
    loaded_at: float


class ReloadResponse(BaseModel):
    changed: bool
    version: str
    previous: str | None
