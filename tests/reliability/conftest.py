"""Fixtures for the reliability tests: the service tests' own (tiny model stores, a clean ELCREC_* environment,
a redis-server of the test's own where it kills or restarts it), reused rather than copied."""

from __future__ import annotations

from tests.service.conftest import _no_elcrec_env, anyio_backend, own_redis, store

__all__ = ["_no_elcrec_env", "anyio_backend", "own_redis", "store"]
