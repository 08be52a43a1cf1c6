"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from elcrec.model.events import ID_PATTERN, ID_RULE, MAX_ID_LENGTH, valid_id


def _check_id(value: str) -> str:
    if not valid_id(value):
        raise ValueError(ID_RULE)
    return value


Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_check_id),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN}),
]


# A catalog field's name, as a request names it (title, genre, ...).
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MAX_FIELDS = 64


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class RecommendRequest(_Request):
    # The schema states what _needs_someone checks, so that a request valid by the schema is one the API takes.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
                {"required": ["history"], "properties": {"history": {"type": "array"}}},
            ]
        }
    )

    user_id: Id | None = None
    history: list[Id] | None = None  # oldest first; appended to the stored history of user_id
    k: int = Field(10, ge=1)
    exclude_seen: bool = True
    # Rank towards this intent ("more of this"): the user's vector moved towards the intent's characteristic items;
    # with no known history, the intent's characteristic items themselves.
    intent: int | None = Field(None, ge=0)
    # Spread the k items over the user's nearest intents, each taking places in proportion to its probability.
    diversify: bool = False
    # Catalog fields to return with each item (title, genre, ...: the version's catalog names them).
    fields: list[FieldName] | None = Field(None, max_length=MAX_FIELDS)

    @model_validator(mode="after")
    def _needs_someone(self) -> RecommendRequest:
        if self.user_id is None and self.history is None:
            raise ValueError("give a user_id, a history, or both")
        return self


class EventsRequest(_Request):
    item_ids: list[Id] = Field(min_length=1)  # oldest first


class ScoredItem(BaseModel):
    item_id: str
    # The item's inner product with the user's own vector, in every answer from the model: in a steered or
    # diversified answer too (whose ranking differs from the user's own, so that its list need not be sorted by
    # score), so that the scores of one list compare. For an intent's items: with the intent's direction. Null
    # for popularity fallbacks.
    score: float | None
    # The intent this item serves, where the answer is steered towards an intent or spread over several; null in a
    # plain answer (the user's own ranking).
    intent: int | None = None
    # The catalog fields the request named (null: not asked, or the catalog does not know the item).
    catalog: dict[str, Any] | None = None


class LabelCategoryOut(BaseModel):
    field: str
    value: str
    support: int  # of the intent's characteristic items (known to the catalog) holding it
    share: float  # support / those items
    catalog_share: float  # its share among the model's items the catalog knows
    lift: float  # share / catalog_share


class IntentLabelOut(BaseModel):
    """What the intent is about, from the catalog (model/intent_labels.py): the categories that set its 50 most
    characteristic items apart from the catalog (each on at least 5 of them and over-represented beyond chance,
    highest lift first; none where no category does) and the titles of its most characteristic items."""

    text: str
    categories: list[LabelCategoryOut]
    titles: list[str]


class RankedIntent(BaseModel):
    id: int
    distance: float  # squared Euclidean distance between normalised pooled state and center
    # of this intent for the user, over all K intents: softmax((cos + bias) / T), T the model's training temperature,
    # bias the version's balancing bias (none: 0; docs/INTENTS.md). Intents are ranked by it, so with a bias the
    # distances need not rise down the list.
    probability: float
    share: float | None  # share of the training users in this intent (from the manifest), if known
    label: IntentLabelOut | None = None  # null where the version has no catalog


class Intent(RankedIntent):
    runners_up: list[RankedIntent]
    because: list[str]  # history items that pull the user most towards this intent, strongest first
    # With `fields`: the named catalog fields of each `because` item, in its order (null: not in the catalog).
    because_catalog: list[dict[str, Any] | None] | None = None


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    intent: Intent | None  # null when there was no known history (cold start)
    # model: from the user's history; popular: no known history; intent: no known history, the asked intent's items
    strategy: Literal["model", "popular", "intent"]
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
    label: IntentLabelOut | None  # null where the version has no catalog
    # "profile": the items that set the intent's users apart from the average user, by inner product with the
    # intent's profile (the mean normalised state of the training users it holds) minus the training users' mean
    # normalised state; "characteristic": the same with the normalised center for the profile (a version exported
    # without profiles); "center": by the center alone (a version exported without either).
    items: list[ScoredItem]
    items_by: Literal["profile", "characteristic", "center"]
    model_version: str


class IntentList(BaseModel):
    intents: list[IntentDetail]  # this page
    total: int  # intents listed: of the model (K), or with `category`, those whose label names it
    offset: int
    order: Literal["share", "id"]  # "id" where the version records no shares
    # used, largest, effective, overlap and lift of the intents on the test users (training/intent_health.py)
    health: dict[str, Any] | None
    model_version: str


class ItemInfo(BaseModel):
    item_id: str
    # its catalog fields (title and the categorical ones, each a list of values); null where the version has no
    # catalog or the catalog does not know the item (the model does)
    catalog: dict[str, Any] | None
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
    # used, largest, effective, overlap and lift of the intents on the test users (training/intent_health.py)
    intent_health: dict[str, Any] | None
    # what the version's intent calibration holds and how it was fitted (docs/INTENTS.md); None: uncalibrated
    intent_calibration: dict[str, Any] | None
    catalog: dict[str, Any] | None  # the manifest's: the file it was read from, its fields, items known
    device: str
    index: str
    precision: str  # the encoder's: fp32, bf16 or fp16
    precision_check: dict[str, Any] | None  # bf16/fp16 against fp32 on probe histories (top-10 and intents kept)
    loaded_at: float


class ReloadResponse(BaseModel):
    changed: bool
    version: str
    previous: str | None


# Error bodies, for the OpenAPI document: every error is an object with a `detail`.


class Problem(BaseModel):
    detail: str


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")  # pydantic adds input, ctx, url

    loc: list[str | int]
    msg: str
    type: str


class InvalidRequest(BaseModel):
    """422: fields that break the schema (a list), or a request the served model cannot answer as asked (a
    message: unknown item ids, listed in unknown_items; k beyond the catalog; a history over the limit)."""

    detail: str | list[FieldError]
    unknown_items: list[str] | None = None


class ReloadRefusal(BaseModel):
    message: str
    serving: str | None


class ReloadConflict(BaseModel):
    detail: ReloadRefusal


class ModelStatus(BaseModel):
    loaded: bool
    version: str | None


class HistoryStatus(BaseModel):
    backend: str  # memory, redis or redis-cluster
    ok: bool
    error: str | None = None


class ReloadStatus(BaseModel):
    last_error: str | None  # why the store's CURRENT version was refused, while it is
    failed_version: str | None
    last_failure_at: float | None


class Readiness(BaseModel):
    ready: bool
    model: ModelStatus
    history: HistoryStatus
    reload: ReloadStatus
