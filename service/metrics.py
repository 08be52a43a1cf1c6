"""Prometheus metrics of one app, in its own registry (several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Route templates only (never raw paths): user ids must not become label values.
        self.request_seconds = Histogram(
            "elcrec_request_duration_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "elcrec_batch_size", "Queries per encoder call", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "elcrec_batch_duration_seconds",
            "Encoder + retrieval time of one micro-batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.answer_cache = Counter(
            "elcrec_answer_cache_total", "Queries answered from the version's answer cache (hit) or computed (miss)",
            ["result"], registry=r,
        )
        self.model_info = Gauge(
            "elcrec_model_info", "The model version being served (value 1)", ["version"], registry=r
        )
        self.model_loaded_at = Gauge(
            "elcrec_model_loaded_timestamp_seconds", "When the served version was loaded", registry=r
        )
        self.reloads = Counter("elcrec_reloads_total", "Model versions swapped in", registry=r)
        self.reload_failures = Counter(
            "elcrec_reload_failures_total", "Versions refused (corrupt, mismatched, unloadable)", registry=r
        )
        self.reload_failing = Gauge(
            "elcrec_reload_failing", "1 while the store's CURRENT version cannot be loaded", registry=r
        )
        self.redis_errors = Counter(
            "elcrec_redis_errors_total", "Failed history store calls", ["operation"], registry=r
        )
        self.recommendations = Counter(
            "elcrec_recommendations_total", "Recommendations served, by strategy", ["strategy"], registry=r
        )
        self.cold_starts = Counter(
            "elcrec_cold_starts_total", "Requests with no known history (served popular items)", registry=r
        )
        self.excluded_items = Counter(
            "elcrec_excluded_items_total", "Seen items removed from the top of a result", registry=r
        )
        self.unknown_items = Counter(
            "elcrec_unknown_items_total", "Event items the served model does not know yet", registry=r
        )
        self.events = Counter("elcrec_events_total", "Accepted events (item ids stored)", registry=r)
        # Bounded cardinality: the served version's INTENT_LABELS largest intents by name, the rest as "other".
        self.intents_served = Counter(
            "elcrec_intents_served_total", "Users' nearest intents in served recommendations and intent lookups",
            ["intent"], registry=r,
        )

    def set_model(self, version: str, loaded_at: float) -> None:
        self.model_info.clear()
        self.model_info.labels(version).set(1)
        self.model_loaded_at.set(loaded_at)

    def render(self) -> bytes:
        return generate_latest(self.registry)
