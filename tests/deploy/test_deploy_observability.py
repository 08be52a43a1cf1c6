"""Prometheus and Grafana configuration: parses, points at the right services, queries elcrec_* metrics."""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import pytest
from deploy_support import (
    DEPLOY,
    REPO,
    alert_exprs,
    compose,
    dashboard_exprs,
    k8s_documents,
    load_yaml,
    promql_label_names,
    promql_metric_names,
    require_tool,
    run,
)

PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "elcrec.json"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "elcrec.yml"
# Labels PromQL or Prometheus add themselves (histogram buckets, target labels).
IMPLICIT_LABELS = {"le", "instance", "job", "namespace", "pod", "service"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def container_mount(service: str, target: str) -> str:
    for volume in compose()["services"][service]["volumes"]:
        source, mounted = volume.split(":")[:2]
        if mounted == target:
            return source
    raise AssertionError(f"{service}: nothing mounted at {target}")


# --- Prometheus ----------------------------------------------------------------------------------------


def test_promtool_check_config_and_rules():
    promtool = require_tool("promtool")
    # prometheus-kubernetes.yml is not checked here: Debian's promtool is built without kubernetes_sd.
    result = run([promtool, "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    result = run([promtool, "check", "rules", str(PROMETHEUS / "alerts.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_prometheus_scrapes_the_api_service():
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "elcrec-api"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (target,) = [t for sc in job["static_configs"] for t in sc["targets"]]
    host, port = target.split(":")
    services = compose()["services"]
    assert host in services, f"scrape target host {host} is not a compose service"
    cmd = services[host]["command"]
    assert port == cmd[cmd.index("--port") + 1], "scrape port != the port the API listens on"
    # the file compose mounts is this one, and the rule files it names are mounted next to it
    assert (
        container_mount("prometheus", "/etc/prometheus/prometheus.yml")
        == "./deploy/prometheus/prometheus.yml"
    )
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file).is_file()
        assert (
            container_mount("prometheus", f"/etc/prometheus/{rule_file}")
            == f"./deploy/prometheus/{rule_file}"
        )


def test_kubernetes_prometheus_keeps_the_api_service_port():
    config = load_yaml(PROMETHEUS / "prometheus-kubernetes.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "elcrec-api"]
    keep = {
        tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"
    }
    (service,) = [
        d
        for _, d in k8s_documents()
        if d["kind"] == "Service" and d["metadata"]["name"] == keep[("__meta_kubernetes_service_name",)]
    ]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert keep[("__meta_kubernetes_endpointslice_port_name",)] in port_names
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["namespaces"]["names"] == ["elcrec"]
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file).is_file()


def test_alerts_use_elcrec_metrics():
    rules = load_yaml(PROMETHEUS / "alerts.yml")
    for expr in alert_exprs(rules):
        names = promql_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert all(n.startswith("elcrec_") or n == "up" for n in names), f"{expr!r} uses {names}"


# --- Grafana -------------------------------------------------------------------------------------------


def test_datasource_points_at_compose_prometheus():
    (source,) = load_yaml(DATASOURCE)["datasources"]
    assert source["type"] == "prometheus"
    url = urlparse(source["url"])
    assert url.hostname in compose()["services"]
    assert url.port == 9090
    assert container_mount("grafana", "/etc/grafana/provisioning") == "./deploy/grafana/provisioning"


def test_dashboard_provider_path_is_mounted():
    (provider,) = load_yaml(PROVIDER)["providers"]
    path = provider["options"]["path"]
    source = container_mount("grafana", path)
    assert (REPO / source / DASHBOARD.name).is_file()


def test_dashboard_parses_and_uses_the_provisioned_datasource():
    board = dashboard()
    assert board["uid"] and board["title"]
    uid = load_yaml(DATASOURCE)["datasources"][0]["uid"]
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus" and variable["current"]["value"] == uid
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in board["panels"]:
        for t in panel.get("targets", []):
            assert t["datasource"]["uid"] in (uid, f"${{{variable['name']}}}"), panel["title"]


def test_dashboard_queries_only_elcrec_metrics():
    exprs = dashboard_exprs(dashboard())
    assert exprs
    for expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert all(n.startswith("elcrec_") for n in names), f"{expr!r} uses {sorted(names)}"


def test_dashboard_covers_the_operational_signals():
    exprs = dashboard_exprs(dashboard())
    joined = "\n".join(exprs)
    assert re.search(r"rate\(elcrec_request_\w+_count", joined), "request rate"
    assert "histogram_quantile(0.50" in joined and "histogram_quantile(0.99" in joined, "p50/p99 latency"
    assert "elcrec_batch_size_bucket" in joined, "batch sizes"
    assert "elcrec_model_info" in joined, "model version"
    assert "elcrec_redis_errors_total" in joined, "redis errors"


def test_metric_names_match_the_service():
    """When the service's metrics are importable, everything the dashboard and alerts query must exist."""
    metrics_module = pytest.importorskip("elcrec.service.metrics", reason="elcrec.service.metrics not importable")
    metrics = metrics_module.Metrics()
    exported: set[str] = set()
    labels: set[str] = set()
    for family in metrics.registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "info": ["_info"]}
        exported.update(family.name + s for s in suffixes.get(family.type, [""]))
    # label names are not part of collect() for metrics without children: read them off the collectors
    for collector in list(getattr(metrics.registry, "_collector_to_names", {})):
        labels.update(getattr(collector, "_labelnames", ()))
    exprs = dashboard_exprs(dashboard()) + alert_exprs(load_yaml(PROMETHEUS / "alerts.yml"))
    used = set().union(*(promql_metric_names(e) for e in exprs)) - {"up"}
    assert used <= exported, f"not exported by service/metrics.py: {sorted(used - exported)}"
    used_labels = set().union(*(promql_label_names(e) for e in exprs))
    if not labels:
        pytest.skip(
            "prometheus_client internals changed: label names not readable; metric names were checked"
        )
    unknown = used_labels - labels - IMPLICIT_LABELS
    assert not unknown, f"labels not defined by service/metrics.py: {sorted(unknown)}"
