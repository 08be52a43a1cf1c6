"""Service configuration: one pydantic-settings object, read from ELCREC_* environment variables."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from elcrec.model.redis_target import SENTINEL_SCHEME, sentinel_target

REDIS_SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)


class Settings(BaseSettings):
    # Errors name the setting and what is wrong, never its value: a Redis URL or a token may carry a secret.
    model_config = SettingsConfigDict(env_prefix="ELCREC_", frozen=True, hide_input_in_errors=True)

    artifacts: Path = Path("artifacts")  # the store: CURRENT + v0001/ ...
    device: str = "auto"  # auto (GPU when present), cpu, cuda, cuda:N
    # No Redis URL: histories live in this process (lost on restart), so the service needs nothing else.
    redis_url: str | None = None
    redis_timeout_s: Annotated[float, Field(gt=0, le=30)] = (
        0.5  # socket and connect timeouts: fail fast, never hang
    )
    redis_max_connections: Annotated[int, Field(ge=1)] = 64
    # Replicas that must hold an event before it is acknowledged (Redis WAIT): with 1 or more, a failover after a
    # 200 cannot lose the event; short of it in time, a 503 (the client may send it again). 0: the primary's word.
    redis_wait_replicas: Annotated[int, Field(ge=0, le=16)] = 0
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
    # The encoder's precision; a bf16/fp16 version is refused unless, on probe histories, at least
    # precision_min_identical of its top-10 lists are fp32's exactly and precision_min_intents of its intents
    # (service/precision.py): a lower precision that answers differently is not a speed-up.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    jit: bool = True  # TorchScript-trace the encoder at load (checked equal to the module; untraced if not)
    precision_min_identical: Annotated[float, Field(ge=0, le=1)] = 0.995
    precision_min_intents: Annotated[float, Field(ge=0, le=1)] = 0.99
    # Answers kept per loaded version for repeat requests (the same history, k and options): a hit skips the
    # encoder and the retrieval; 0 turns it off (service/answer_cache.py; its memory: docs/SERVING.md).
    answer_cache: Annotated[int, Field(ge=0, le=10_000_000)] = 20_000
    threads: Annotated[int | None, Field(ge=1)] = (
        None  # torch and FAISS CPU threads; None: chosen from the usable CPUs (default_threads)
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
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = value.partition("://")[0]
        if scheme not in REDIS_SCHEMES:
            raise ValueError(f"must start with one of {', '.join(s + '://' for s in REDIS_SCHEMES)}, not {scheme}://")
        sentinel_target(value)  # ValueError names what is wrong with a Sentinel URL
        return value


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity (taskset, a container's cpuset) and a cgroup v2 quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def default_threads(cpus: int) -> int:
    """Intra-op threads for the encoder and FAISS when ELCREC_THREADS is unset: a quarter of the usable CPUs, at
    least one. The service's batches are small (a few to 64 histories), its event loop runs in the same process,
    and Redis, the load balancer's connections and other processes share the machine: OpenMP threads that outnumber
    the free cores spin-wait for each other: on a 2-core machine one thread served more requests, with a shorter
    tail, than torch's default of two (measured: docs/SERVING.md, *Load figures*, "Threads"). More processes
    (`--workers`) use more cores."""
    return max(1, cpus // 4)
