"""Service configuration: one pydantic-settings object, read from ELCREC_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ELCREC_", frozen=True)

    artifacts: Path = Path("artifacts")  # the store: CURRENT + v0001/ ...
    device: str = "auto"  # auto (GPU when present), cpu, cuda, cuda:N
    # No Redis URL: histories live in this process (lost on restart), so the service needs nothing else.
    redis_url: str | None = None
    redis_timeout_s: Annotated[float, Field(gt=0, le=30)] = (
        0.5  # socket and connect timeouts: fail fast, never hang
    )
    redis_max_connections: Annotated[int, Field(ge=1)] = 64
    events_stream_maxlen: Annotated[int | None, Field(ge=1)] = None  # None: the stream is never trimmed here
    admin_token: SecretStr | None = None  # unset or empty: the admin endpoints are disabled

    batch_window_ms: Annotated[float, Field(ge=0, le=100)] = 1.0  # how long an idle batcher waits for company
    batch_max_size: Annotated[int, Field(ge=1, le=4096)] = 64
    # Run micro-batches on a worker thread rather than on the event loop (for batches that take long).
    inference_thread: bool = False
    # FAISS index-factory string over the item table (inner product), or "torch": exact top-k by a matrix
    # product on the model's device (the GPU path's retrieval)
    index: str = "Flat"
    index_params: str = ""  # faiss ParameterSpace string, e.g. "nprobe=16" or "efSearch=128"
    # The encoder's precision; bf16/fp16 versions are refused unless their rankings on probe histories keep
    # at least this share of fp32's top-10 items and intents (service/precision.py).
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    jit: bool = True  # TorchScript-trace the encoder at load (checked equal to the module; untraced if not)
    precision_min_overlap: Annotated[float, Field(ge=0, le=1)] = 0.9
    threads: Annotated[int | None, Field(ge=1)] = (
        None  # torch and FAISS CPU threads; None keeps their defaults
    )

    poll_interval_s: Annotated[float, Field(gt=0)] = 2.0  # how often the store's CURRENT pointer is checked
    max_body_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024  # fits max_history ids of the longest length
    max_history: Annotated[int, Field(ge=1)] = 1000  # explicit history entries a request may carry
    max_event_items: Annotated[int, Field(ge=1)] = 1000
    max_k: Annotated[int, Field(ge=1)] = 1000
    runner_up_intents: Annotated[int, Field(ge=0)] = 3
    # Weight of an intent's direction against the user's own in requests with "intent" or "diversify": 1 moves
    # further (docs/SERVING.md has what each weight costs in NDCG and buys in variety)
    intent_steer: Annotated[float, Field(gt=0, le=10)] = 1.0
    memory_max_users: Annotated[int, Field(ge=1)] = (
        100_000  # in-process history store only (least recent evicted)
    )
    log_level: str = "info"
    otel: bool = False  # FastAPI's native OpenTelemetry (global providers, OTEL_* variables)

    @field_validator("admin_token")
    @classmethod
    def _empty_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @field_validator("redis_url")
    @classmethod
    def _empty_url_is_none(cls, value: str | None) -> str | None:
        return value or None
