"""Helpers shared by the service tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
import torch

from elcrec.model.artifact import MANIFEST, ManifestInfo, Store
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace
from elcrec.service.deps import Resources
from elcrec.service.main import create_app
from elcrec.service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ELCREC_SHARED", REPO.parent / "shared"))
OFFICIAL_CHECKPOINT = SHARED / "official" / "ELCRec-Toys_and_Games-1.pt"
TOYS_DATA = SHARED / "data" / "Toys_and_Games.txt"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
ELCREC_CLI = Path(sys.executable).parent / "elcrec"

N_ITEMS = 40
MAX_LEN = 8
ITEM_IDS: list[str | None] = [None] + [f"i{r}" for r in range(1, N_ITEMS + 1)] + [None]
POPULAR = ["i3", "i5", "i7", "i9", "i11", "i13", "i15", "i17", "i19", "i21", "i23", "i25"]
TOKEN = "s3cret-token"


def tiny_model(seed: int = 0, pooling: str = "all", n_intents: int = 4, mix_alpha: float = 0.0) -> ELCRec:
    torch.manual_seed(seed)
    model = ELCRec(
        ModelConfig(
            n_items=N_ITEMS, n_layers=1, n_intents=n_intents, max_len=MAX_LEN, pooling=pooling, mix_alpha=mix_alpha
        )
    )
    with torch.no_grad():  # spread the centers so that intents differ between sequences
        model.intent_centers.normal_()
    return model.eval()


def add_version(
    store: Path, seed: int = 0, pooling: str = "all", make_current: bool = True, mix_alpha: float = 0.0,
    calibration: dict[str, torch.Tensor] | None = None, **info: Any
) -> Path:
    """A tiny model's version; `calibration` ({"bias": (4,), "profiles": (4, 64)}) is stored as its intents'. `info`:
    manifest entries as they are to stand in the file, malformed ones included (what another release may have
    written), over those of a version described by POPULAR and intent shares 0.1 to 0.4."""
    model = tiny_model(seed, pooling, mix_alpha=mix_alpha)
    intents = None if calibration is None else IntentSpace(model.intent_centers.detach(), **calibration)
    described = ManifestInfo(popular_items=tuple(POPULAR), intent_shares=(0.1, 0.2, 0.3, 0.4))
    version = Store(store).write_version(model, ITEM_IDS, described, make_current=False, intents=intents)
    if info:  # before CURRENT names it: a polling service never sees the version without them
        raw = json.loads((version / MANIFEST).read_text())
        (version / MANIFEST).write_text(json.dumps({**raw, **info}))
    if make_current:
        Store(store).set_current(version.name)
    return version


def settings_for(store: Path, **overrides: Any) -> Settings:
    defaults: dict[str, Any] = {
        "artifacts": store,
        "poll_interval_s": 0.1,
        "batch_window_ms": 1.0,
        "device": "cpu",
    }
    return Settings(**{**defaults, **overrides})


class AppClient(httpx.AsyncClient):
    resources: Resources


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[AppClient]:
    """The app with its lifespan, behind httpx's in-process transport: the whole HTTP stack, no socket. The thread
    count the app sets for the process (ELCREC_THREADS) is put back afterwards, for the tests that follow."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    threads = torch.get_num_threads()
    try:
        async with app.router.lifespan_context(app), AppClient(transport=transport, base_url="http://t") as c:
            c.resources = app.state.resources
            yield c
    finally:
        torch.set_num_threads(threads)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ELCREC_* settings (a developer's shell must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELCREC_")}
    env.update(extra)
    return env


class RedisServer:
    """A throw-away redis-server on a loopback port; stop() and start() simulate an outage."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self, command: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(command + b"\r\n")
            return s.recv(64)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def _ours(self) -> bool:
        """Up, and the server answering on the port is the process we started (not a stranger's)."""
        assert self.proc is not None and self.proc.poll() is None, f"redis-server on {self.port} exited"
        try:
            with self.client() as c:
                return int(c.info("server")["process_id"]) == self.proc.pid
        except redis.RedisError:
            return False

    def options(self) -> list[str]:
        """redis-server options beyond port and bind: no persistence for throw-away servers."""
        return ["--save", "", "--appendonly", "no"]

    def start(self) -> None:
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", *self.options()]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ours, 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def flush(self) -> None:
        assert self._command(b"FLUSHALL").startswith(b"+OK")


@dataclass
class ServeProcess:
    client: httpx.Client
    log_path: Path
    exit_code: int | None = None  # set once the process has been stopped


@contextlib.contextmanager
def serve_process(
    store: Path, env: dict[str, str], log_path: Path, ready_timeout: float = 60, extra: tuple[str, ...] = ()
) -> Iterator[ServeProcess]:
    """`elcrec serve` as a real process on a free loopback port, ready when yielded; SIGTERM on exit."""
    port = free_port()
    with open(log_path, "w+") as log:
        proc = subprocess.Popen(
            [str(ELCREC_CLI), "serve", "--artifacts", str(store), "--host", "127.0.0.1", "--port", str(port), *extra],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        served = ServeProcess(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10), log_path)

        def up() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return served.client.get("/health/ready").status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_for(up, ready_timeout, "elcrec serve to become ready")
            yield served
        finally:
            served.client.close()
            proc.terminate()
            served.exit_code = proc.wait(timeout=30)


def random_table(n: int = 500, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n + 2, d)).astype(np.float32)
    t[0] = t[-1] = 100.0  # padding and mask rows would win every inner product if they were indexed
    return t
