"""The live model bundle and its replacement when the store's CURRENT pointer moves."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from elcrec.model.artifact import ArtifactError, Store
from elcrec.service.bundle import LoadOptions, ModelBundle, build_bundle
from elcrec.service.metrics import Metrics

log = logging.getLogger("elcrec.reload")
# After a swap, the old version is freed once the requests that took it have finished; then the allocator is asked to
# give the freed pages back. The delay covers those requests (milliseconds) with room to spare.
RELEASE_DELAY_S = 0.5


def _malloc_trim() -> Callable[[], None] | None:
    """glibc's malloc_trim(0), or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Return the allocator's free pages to the system. A version is built on a worker thread while the old one
    serves, so for a moment both are in memory; glibc keeps what the old one freed in its arenas (the worker's and
    the main one) instead of returning it, and RSS stayed about a version's size higher from the first swaps on
    (docs/SERVING.md, "Memory across model swaps")."""
    if _TRIM is not None:
        _TRIM()


@dataclass(frozen=True)
class ReloadResult:
    changed: bool
    version: str  # the version served after the call
    previous: str | None


class ModelHolder:
    """Holds one bundle reference. A new bundle is built completely on a worker thread, then the
    reference is replaced in one assignment: requests that already took the old one finish with it."""

    def __init__(
        self,
        store: Path,
        device: torch.device,
        metrics: Metrics,
        options: LoadOptions | None = None,
    ) -> None:
        self.store = store
        self.device = device
        self.metrics = metrics
        self.options = options or LoadOptions()
        self.bundle: ModelBundle | None = None
        self.last_error: str | None = None
        self.failed_version: str | None = None
        self.last_failure_at: float | None = None
        self._lock = asyncio.Lock()
        self._releasing: asyncio.Future[None] | None = None

    def status(self) -> dict[str, object]:
        return {
            "last_error": self.last_error,
            "failed_version": self.failed_version,
            "last_failure_at": self.last_failure_at,
        }

    async def reload(self, force: bool = False) -> ReloadResult:
        """Load CURRENT if it is not what is served. A version that failed before is retried only when
        forced (versions are immutable, so polling it again would only repeat the error)."""
        async with self._lock:
            previous = self.bundle.name if self.bundle else None
            try:
                name = Store(self.store).current()
                if name is None:
                    raise ArtifactError(f"{self.store} has no CURRENT pointer (is it an artifact store?)")
            except (ArtifactError, OSError) as exc:
                self._failed(None, exc)
                raise ArtifactError(str(exc)) from exc
            if name == previous:
                # CURRENT names what is served (e.g. rolled back after a refused version): nothing is failing.
                self._clear_failure()
                return ReloadResult(False, name, previous)
            if name == self.failed_version and not force:
                return ReloadResult(False, previous or name, previous)
            try:
                bundle = await asyncio.to_thread(build_bundle, Store(self.store).version(name), self.device,
                                                 self.options)
            except ArtifactError as exc:
                self._failed(name, exc)
                raise
            except Exception as exc:  # anything else from loading is just as unusable
                self._failed(name, exc)
                raise ArtifactError(f"cannot load {Store(self.store).version(name)}: {type(exc).__name__}: {exc}") from exc
            self.bundle = bundle
            self._clear_failure()
            self.metrics.reloads.inc()
            self.metrics.set_model(bundle.version, bundle.loaded_at)
            log.info("serving model %s (was %s)", bundle.version, previous)
            asyncio.get_running_loop().call_later(RELEASE_DELAY_S, self._release)
            return ReloadResult(True, bundle.name, previous)

    def _release(self) -> None:
        # On a worker thread: trimming walks every arena, which requests on the event loop need not wait for.
        self._releasing = asyncio.ensure_future(asyncio.to_thread(release_freed_memory))

    def _clear_failure(self) -> None:
        self.last_error = self.failed_version = None
        self.metrics.reload_failing.set(0)

    def _failed(self, name: str | None, exc: Exception) -> None:
        if str(exc) == self.last_error and name == self.failed_version:
            return  # the same failure seen again by the poll: counted and logged once
        self.last_error = str(exc)
        self.failed_version = name
        self.last_failure_at = time.time()
        self.metrics.reload_failures.inc()
        self.metrics.reload_failing.set(1)
        serving = self.bundle.name if self.bundle else "nothing"
        log.error("refused model version %s, still serving %s: %s", name, serving, exc)

    async def watch(self, interval_s: float) -> None:
        """Poll CURRENT forever (run as a task); failures are recorded, never raised."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reload()
            except ArtifactError:
                pass  # logged and counted in _failed
            except Exception:
                log.exception("unexpected error while checking for a new model version")
