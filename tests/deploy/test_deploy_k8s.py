"""Kubernetes manifests: schema validation (kubernetes-validate, offline) and cross-resource checks."""

from __future__ import annotations

import pytest
from deploy_support import (
    DEPLOY,
    K8S,
    k8s_documents,
    k8s_manifest_files,
    load_yaml,
    pod_spec,
    require_tool,
    run,
    yaml,
)

# Oldest Kubernetes the manifests must work on (CronJob timeZone is GA in 1.27, HPA v2 in 1.23),
# and the newest schema the pinned kubernetes-validate ships.
MIN_K8S = "1.29.0"
NAMESPACE = "elcrec"


def docs_of(kind: str) -> list[dict]:
    return [doc for _, doc in k8s_documents() if doc["kind"] == kind]


def one(kind: str, name: str) -> dict:
    matches = [doc for doc in docs_of(kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def test_manifests_parse_and_are_namespaced_by_kustomize():
    docs = k8s_documents()
    assert docs
    for path, doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path.name}: not a Kubernetes object"
        assert doc["metadata"].get("namespace") in (None, NAMESPACE), (
            f"{path.name}: hard-coded other namespace"
        )


@pytest.mark.parametrize("version", [MIN_K8S, "latest"])
def test_schema_validation(version):
    kv = pytest.importorskip(
        "kubernetes_validate", reason="install with: pip install kubernetes-validate==1.37.0"
    )
    if version == "latest":
        version = kv.latest_version()
    errors = []
    for path, doc in k8s_documents():
        try:
            kv.validate(doc, version, strict=True)  # strict: unknown fields are errors (typos)
        except kv.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            errors.append(
                f"{path.relative_to(DEPLOY)} {doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}"
            )
        except kv.SchemaNotFoundError as exc:
            errors.append(f"{path.relative_to(DEPLOY)}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_kustomization_lists_every_manifest_except_the_one_off_jobs():
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert kustomization["namespace"] == NAMESPACE
    listed = {K8S / r for r in kustomization["resources"]}
    for path in listed:
        assert path.is_file(), f"kustomization lists missing {path.name}"
    expected = {p for p in k8s_manifest_files() if p.parent == K8S}
    assert listed == expected, f"unlisted: {sorted(p.name for p in expected - listed)}"
    images = {i["name"] for i in kustomization["images"]}
    used = {
        c["image"].split(":")[0] for _, d in k8s_documents() if pod_spec(d) for c in containers(pod_spec(d))
    }
    assert "elcrec" in images and "elcrec" in used


def test_kustomize_build():
    kubectl = require_tool("kubectl")
    result = run([kubectl, "kustomize", str(K8S)])
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {d["kind"] for d in built} >= {
        "Namespace",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Service",
        "StatefulSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "CronJob",
    }
    for doc in built:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE


def test_every_pod_is_non_root_restricted_and_has_resources():
    for path, doc in k8s_documents():
        spec = pod_spec(doc)
        if spec is None:
            continue
        where = f"{path.name} {doc['kind']}/{doc['metadata']['name']}"
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["runAsUser"] != 0, where
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, f"{where} {c['name']}"
            assert sc["capabilities"]["drop"] == ["ALL"], f"{where} {c['name']}"
            for bucket in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bucket]), f"{where} {c['name']}: {bucket}"
            assert ":" in c["image"] and not c["image"].endswith(":latest"), f"{where}: unpinned image"


def test_api_probes_and_port():
    api = one("Deployment", "elcrec-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    args = container["args"]
    assert args[0] == "serve" and int(args[args.index("--port") + 1]) == ports["http"]
    assert args[args.index("--artifacts") + 1] == "/artifacts"


def test_service_selects_the_api_pods():
    api = one("Deployment", "elcrec-api")
    service = one("Service", "elcrec-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert api["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = api["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])


def test_hpa_scales_the_api_deployment():
    hpa = one("HorizontalPodAutoscaler", "elcrec-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "elcrec-api")
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = one("PodDisruptionBudget", "elcrec-api")
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_artifact_store_is_rwx_read_only_for_the_api_and_written_by_the_jobs():
    pvc = one("PersistentVolumeClaim", "elcrec-artifacts")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]

    def artifacts_mount(spec: dict, container: dict) -> tuple[dict, dict]:
        volumes = {v["name"]: v for v in spec["volumes"]}
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/artifacts"]
        return volumes[mount["name"]], mount

    api_spec = pod_spec(one("Deployment", "elcrec-api"))
    volume, mount = artifacts_mount(api_spec, api_spec["containers"][0])
    assert volume["persistentVolumeClaim"]["claimName"] == "elcrec-artifacts"
    assert mount.get("readOnly") is True and volume["persistentVolumeClaim"].get("readOnly") is True

    job_spec = pod_spec(one("CronJob", "elcrec-retrain"))
    volume, mount = artifacts_mount(job_spec, job_spec["containers"][0])
    assert volume["persistentVolumeClaim"]["claimName"] == "elcrec-artifacts"
    assert not mount.get("readOnly")


def test_retrain_cronjob():
    cron = one("CronJob", "elcrec-retrain")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid", "one writer of the artifact store at a time"
    spec = pod_spec(cron)
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    args = container["args"]
    assert args[0] == "retrain"
    opts = dict(zip(args[1::2], args[2::2], strict=True))
    assert set(opts) >= {"--artifacts", "--data", "--redis"}
    config = one("ConfigMap", "elcrec-config")["data"]
    # $(VAR) expansion only works for variables the container defines
    env_from = {e["configMapRef"]["name"] for e in container["envFrom"]}
    assert "elcrec-config" in env_from
    for value in opts.values():
        if value.startswith("$("):
            assert value[2:-1] in config, f"{value} is not defined in elcrec-config"


def test_redis_is_persistent_and_reachable_by_name():
    sts = one("StatefulSet", "elcrec-redis")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--appendonly") + 1] == "yes"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert any(
        m["name"] == claim["metadata"]["name"] and m["mountPath"] == "/data"
        for m in container["volumeMounts"]
    )
    service = one("Service", sts["spec"]["serviceName"])
    assert service["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    url = one("ConfigMap", "elcrec-config")["data"]["ELCREC_REDIS_URL"]
    assert url == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    assert "exec" in container["livenessProbe"] and "exec" in container["readinessProbe"]


def test_redis_network_policy_admits_every_workload_that_uses_it():
    policy = one("NetworkPolicy", "elcrec-redis")
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    allowed = {e["key"]: set(e["values"]) for e in peer["podSelector"]["matchExpressions"]}
    for _, doc in k8s_documents():
        spec = pod_spec(doc)
        if spec is None or doc["metadata"]["name"] == "elcrec-redis":
            continue
        labels = (
            doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
            if doc["kind"] == "CronJob"
            else doc["spec"]["template"]["metadata"]["labels"]
        )
        for key, values in allowed.items():
            assert labels.get(key) in values, f"{doc['metadata']['name']} pods are not admitted to Redis"


def test_secret_is_referenced_never_shipped():
    refs = set()
    for _, doc in k8s_documents():
        assert doc["kind"] != "Secret", "do not commit Secrets; create them with kubectl (deploy/README.md)"
        spec = pod_spec(doc)
        for c in containers(spec) if spec else []:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    assert ("elcrec-secrets", "admin-token") in refs
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "kubectl -n elcrec create secret generic elcrec-secrets" in readme
    assert "--from-literal=admin-token=" in readme
