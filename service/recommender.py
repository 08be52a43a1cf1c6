"""What the endpoints do: histories in, recommendations, intents and stored events out."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from elcrec.service.bundle import ModelBundle
from elcrec.service.catalog import no_catalog
from elcrec.service.engine import Engine
from elcrec.service.errors import InvalidInput, NotFound
from elcrec.service.history import HistoryStore
from elcrec.service.metrics import Metrics
from elcrec.service.queries import Answer, Query
from elcrec.service.schemas import (
    EventsResponse,
    Intent,
    IntentDetail,
    IntentLabelOut,
    IntentList,
    ItemInfo,
    ModelInfo,
    RankedIntent,
    RecommendRequest,
    RecommendResponse,
    ScoredItem,
    UserIntentResponse,
)
from elcrec.service.settings import Settings


class Recommender:
    def __init__(self, settings: Settings, engine: Engine, history: HistoryStore, metrics: Metrics) -> None:
        self.settings = settings
        self.engine = engine
        self.history = history
        self.metrics = metrics

    async def recommend(self, bundle: ModelBundle, req: RecommendRequest) -> RecommendResponse:
        limit = min(bundle.n_items, self.settings.max_k)
        if req.k > limit:
            raise InvalidInput(
                f"k must be between 1 and {limit} (the catalog has {bundle.n_items} items), got {req.k}"
            )
        if req.intent is not None and req.intent >= bundle.n_intents:
            raise InvalidInput(
                f"intent {req.intent} does not exist; this model has intents 0..{bundle.n_intents - 1}"
            )
        if req.intent is not None and req.diversify:
            raise InvalidInput("give intent (rank towards one intent) or diversify (spread over several), not both")
        fields = self.fields(bundle, req.fields)
        explicit: list[int] = []
        if req.history is not None:
            if len(req.history) > self.settings.max_history:
                raise InvalidInput(
                    f"history has {len(req.history)} items; at most {self.settings.max_history} allowed"
                )
            explicit, unknown = bundle.split_known(req.history)
            if unknown:
                shown = list(dict.fromkeys(unknown))
                raise InvalidInput(
                    f"unknown item ids in history (the model {bundle.version} does not know them): "
                    + ", ".join(repr(u) for u in shown[:20])
                    + (f" and {len(shown) - 20} more" if len(shown) > 20 else ""),
                    unknown_items=shown,
                )
        stored: list[int] = []
        if req.user_id is not None:
            # Unknown items in a stored history are tomorrow's catalog: skipped, not an error.
            with self.engine.on_the_way():
                history = await self.history.get(req.user_id)
            stored, _ = bundle.split_known(history)
        rows = stored + explicit
        seen = frozenset(rows) if req.exclude_seen else frozenset()
        if not rows:
            if req.intent is not None:
                return self._intent_items(bundle, req.intent, req.k, fields)
            return self._popular(bundle, req.k, seen, fields)
        answer = await self.engine.infer(
            bundle,
            Query(rows, req.k, seen, 1 + self.settings.runner_up_intents, steer=req.intent, diversify=req.diversify,
                  steer_weight=self.settings.intent_steer),
        )
        self.metrics.recommendations.labels("model").inc()
        if answer.excluded:
            self.metrics.excluded_items.inc(answer.excluded)
        served: list[int | None] = list(answer.served) if answer.served is not None else [None] * len(answer.rows)
        return RecommendResponse(
            items=[
                ScoredItem(item_id=bundle.external(r), score=s, intent=j, catalog=self._record(bundle, r, fields))
                for r, s, j in zip(answer.rows, answer.scores, served, strict=True)
            ],
            intent=self._intent(bundle, answer, fields),
            strategy="model",
            model_version=bundle.version,
        )

    def _intent_items(self, bundle: ModelBundle, intent_id: int, k: int, fields: tuple[str, ...]) -> RecommendResponse:
        self.metrics.recommendations.labels("intent").inc()
        detail = self._details(bundle, [intent_id], k, fields)[0]
        items = [item.model_copy(update={"intent": intent_id}) for item in detail.items]
        return RecommendResponse(items=items, intent=None, strategy="intent", model_version=bundle.version)

    @staticmethod
    def fields(bundle: ModelBundle, names: list[str] | None) -> tuple[str, ...]:
        """The catalog fields a request names, checked against the version's catalog (422 naming an unknown one)."""
        if bundle.catalog is None:
            no_catalog(names, "catalog fields", bundle.version)
            return ()
        return bundle.catalog.check_fields(names, bundle.version)

    @staticmethod
    def _record(bundle: ModelBundle, row: int, fields: tuple[str, ...]) -> dict[str, Any] | None:
        return bundle.catalog.of(row, fields) if fields and bundle.catalog is not None else None

    @staticmethod
    def _label(bundle: ModelBundle, intent_id: int) -> IntentLabelOut | None:
        return bundle.catalog.labels[intent_id] if bundle.catalog is not None else None

    def _intent(self, bundle: ModelBundle, answer: Answer, fields: tuple[str, ...] = ()) -> Intent:
        shares = bundle.intent_shares
        ranked = [
            RankedIntent(id=i, distance=d, probability=p, share=shares[i] if shares is not None else None,
                         label=self._label(bundle, i))
            for i, d, p in zip(answer.intent_ids, answer.intent_distances, answer.intent_probabilities, strict=True)
        ]
        top = ranked[0]
        self.metrics.intents_served.labels(bundle.intent_labels[top.id]).inc()
        because = [bundle.external(r) for r in answer.drivers]
        because_catalog = [self._record(bundle, r, fields) for r in answer.drivers] if fields else None
        return Intent(id=top.id, distance=top.distance, probability=top.probability, share=top.share,
                      label=top.label, runners_up=ranked[1:], because=because, because_catalog=because_catalog)

    def _popular(
        self, bundle: ModelBundle, k: int, seen: frozenset[int], fields: tuple[str, ...]
    ) -> RecommendResponse:
        self.metrics.cold_starts.inc()
        self.metrics.recommendations.labels("popular").inc()
        rows = [r for r in bundle.popular_rows if r not in seen][:k]
        return RecommendResponse(
            items=[ScoredItem(item_id=bundle.external(r), score=None, catalog=self._record(bundle, r, fields))
                   for r in rows],
            intent=None,
            strategy="popular",
            model_version=bundle.version,
        )

    async def add_events(self, bundle: ModelBundle, user_id: str, items: list[str]) -> EventsResponse:
        if len(items) > self.settings.max_event_items:
            raise InvalidInput(
                f"an event carries at most {self.settings.max_event_items} items, got {len(items)}"
            )
        _, unknown = bundle.split_known(items)
        await self.history.append(user_id, items, bundle.max_len)  # raises unless stored
        self.metrics.events.inc(len(items))
        if unknown:
            self.metrics.unknown_items.inc(len(unknown))
        return EventsResponse(user_id=user_id, stored=len(items), unknown_items=unknown)

    async def user_intent(
        self, bundle: ModelBundle, user_id: str, field_names: list[str] | None = None
    ) -> UserIntentResponse:
        fields = self.fields(bundle, field_names)
        rows, _ = bundle.split_known(await self.history.get(user_id))
        if not rows:
            raise NotFound(f"user {user_id!r} has no history of items the model {bundle.version} knows")
        answer = await self.engine.infer(
            bundle, Query(rows, 0, frozenset(), 1 + self.settings.runner_up_intents)
        )
        return UserIntentResponse(
            user_id=user_id,
            intent=self._intent(bundle, answer, fields),
            history_length=min(len(rows), bundle.max_len),
            model_version=bundle.version,
        )

    def intent_detail(
        self, bundle: ModelBundle, intent_id: int, k: int, field_names: list[str] | None = None
    ) -> IntentDetail:
        if not 0 <= intent_id < bundle.n_intents:
            raise NotFound(
                f"intent {intent_id} does not exist; this model has intents 0..{bundle.n_intents - 1}"
            )
        self._check_k(bundle, k)
        fields = self.fields(bundle, field_names)
        return self._details(bundle, [intent_id], k, fields)[0]

    def intent_list(
        self, bundle: ModelBundle, offset: int, limit: int, k: int, order: str, field_names: list[str] | None = None,
        category: str | None = None,
    ) -> IntentList:
        self._check_k(bundle, k)
        fields = self.fields(bundle, field_names)
        shares = bundle.intent_shares
        ids = list(range(bundle.n_intents))
        if category is not None:
            if bundle.catalog is None:
                no_catalog([category], "category", bundle.version)
            else:
                ids = bundle.catalog.intents_with(category)
        if order == "share" and shares is not None:
            ids.sort(key=lambda i: (-shares[i], i))
        page = ids[offset : offset + limit]
        return IntentList(
            intents=self._details(bundle, page, k, fields) if page else [],
            total=len(ids),
            offset=offset,
            order="share" if order == "share" and shares is not None else "id",
            health=bundle.intent_health,
            model_version=bundle.version,
        )

    def _check_k(self, bundle: ModelBundle, k: int) -> None:
        if not 1 <= k <= min(bundle.n_items, self.settings.max_k):
            raise InvalidInput(f"k must be between 1 and {min(bundle.n_items, self.settings.max_k)}, got {k}")

    def item(self, bundle: ModelBundle, item_id: str) -> ItemInfo:
        row = bundle.rows.get(item_id)
        if row is None:
            raise NotFound(f"item {item_id!r} is unknown to the model {bundle.version}")
        catalog = bundle.catalog.of(row, bundle.catalog.fields) if bundle.catalog is not None else None
        return ItemInfo(item_id=item_id, catalog=catalog, model_version=bundle.version)

    def _details(
        self, bundle: ModelBundle, intent_ids: list[int], k: int, fields: tuple[str, ...] = ()
    ) -> list[IntentDetail]:
        # Items by the intent's direction (its profile, else normalised center, - mean user state) . item: what sets
        # the intent apart, not the items every center scores high (model.intents.characteristic_scores); by the
        # center alone where the version has neither profiles nor mean.
        queries = bundle.intent_directions[intent_ids].float().cpu()
        # search_unseen, not search: an approximate index that comes back short is searched deeper.
        hits = bundle.index.search_unseen(
            queries.numpy().astype(np.float32), [k] * len(intent_ids), [frozenset()] * len(intent_ids)
        )
        shares = bundle.intent_shares
        items_by: Literal["profile", "characteristic", "center"] = (
            "profile" if bundle.intents is not None and bundle.intents.profiles is not None
            else "center" if bundle.intent_mean is None else "characteristic")
        return [
            IntentDetail(
                id=intent_id,
                share=shares[intent_id] if shares is not None else None,
                label=self._label(bundle, intent_id),
                items=[ScoredItem(item_id=bundle.external(r), score=s, catalog=self._record(bundle, r, fields))
                       for r, s in zip(rows, scores, strict=True)],
                items_by=items_by,
                model_version=bundle.version,
            )
            for intent_id, (rows, scores, _) in zip(intent_ids, hits, strict=True)
        ]

    def model_info(self, bundle: ModelBundle) -> ModelInfo:
        m = bundle.manifest
        return ModelInfo(
            version=bundle.version,
            created_at=m.created_at,
            parent=m.parent,
            n_items=bundle.n_items,
            n_intents=bundle.n_intents,
            max_len=bundle.max_len,
            pooling=bundle.config.pooling,
            config=bundle.config.to_dict(),
            origin=m.info.origin or None,
            data=m.info.data or None,
            metrics=m.info.metrics,
            intent_health=m.info.intent_health,
            intent_calibration=m.info.intent_calibration,
            catalog=m.catalog,
            device=str(bundle.device),
            index=bundle.index.spec,
            precision=bundle.precision,
            precision_check=bundle.precision_check,
            loaded_at=bundle.loaded_at,
        )
