"""The Dockerfile: hadolint, plus structural checks that need no Docker engine."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

from deploy_support import DOCKERFILE, REPO, k8s_documents, pod_spec, require_tool, run


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages); continuation lines joined, comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert m, f"unparsable FROM {args!r}"
            stages.append(Stage(base=m.group(1), name=m.group(2)))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede the first FROM, got {keyword}"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def stage_args(stage: Stage) -> dict[str, str]:
    return dict(a.partition("=")[::2] for a in stage.all("ARG"))


def expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec (JSON) form: {args}"
    return value


def test_hadolint_clean():
    hadolint = require_tool("hadolint")
    result = run([hadolint, "--no-color", "--format", "tty", str(DOCKERFILE)], cwd=REPO)
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_multi_stage_with_pinned_bases():
    global_args, stages = parse_dockerfile()
    assert len(stages) >= 2, "expected a builder and a runtime stage"
    assert stages[-1].name == "runtime"
    names = {s.name for s in stages}
    for stage in stages:
        base = expand(stage.base, global_args)
        if base in names:
            continue
        assert ":" in base and not base.endswith(":latest"), f"base image {base} is not pinned by tag"
        assert "$" not in base, f"base image {stage.base} has no default"
    # the runtime stage copies the built environment, it does not build anything
    copies = stages[-1].all("COPY")
    assert any("--from=builder" in c for c in copies), "runtime should COPY --from=builder"
    assert not any(re.search(r"\bpip install\b", r) for r in stages[-1].all("RUN")), (
        "no pip install in runtime"
    )


def test_runtime_runs_as_non_root_with_the_kubernetes_uid():
    _, stages = parse_dockerfile()
    users = stages[-1].all("USER")
    assert users, "runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "use a numeric USER so Kubernetes runAsNonRoot can verify it"
    assert int(user) != 0
    for path, doc in k8s_documents():
        spec = pod_spec(doc)
        if spec is None or "redis" in doc["metadata"]["name"]:
            continue
        assert spec["securityContext"]["runAsUser"] == int(user), (
            f"{path.name}: runAsUser != image USER {user}"
        )


def test_healthcheck_probes_readiness_with_python():
    _, stages = parse_dockerfile()
    checks = stages[-1].all("HEALTHCHECK")
    assert len(checks) == 1
    cmd_json = checks[0].split("CMD", 1)[1].strip()
    cmd = exec_form(cmd_json)
    assert cmd[0] == "python" and "urllib" in cmd[-1], "slim images have no curl: probe with python -c urllib"
    assert "/health/ready" in cmd[-1]
    port = re.search(r"127\.0\.0\.1:(\d+)/", cmd[-1]).group(1)
    assert port in stages[-1].all("EXPOSE")
    # the healthcheck code itself is valid Python
    compile(cmd[-1], "<healthcheck>", "exec")


def test_default_command_serves_the_artifact_store():
    _, stages = parse_dockerfile()
    runtime = stages[-1]
    assert exec_form(runtime.all("ENTRYPOINT")[-1]) == ["elcrec"]
    cmd = exec_form(runtime.all("CMD")[-1])
    assert cmd[0] == "serve"
    opts = dict(zip(cmd[1::2], cmd[2::2], strict=True))
    assert opts == {"--artifacts": "/artifacts", "--host": "0.0.0.0", "--port": runtime.all("EXPOSE")[0]}


def test_cpu_by_default_cuda_by_build_arg_and_torch_pin_matches_pyproject():
    _, stages = parse_dockerfile()
    builder = stages[0]
    args = stage_args(builder)
    assert args["TORCH_VARIANT"] == "cpu"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    torch_pins = [d for d in pyproject["project"]["dependencies"] if re.match(r"torch\s*==", d)]
    assert torch_pins, "pyproject.toml should pin torch=="
    assert args["TORCH_VERSION"] == torch_pins[0].split("==")[1].strip()
    runs = " ".join(builder.all("RUN"))
    # torch alone comes from the PyTorch index (or TORCH_INDEX_URL); everything else from the default index
    # (or PYPI_INDEX_URL, written to the stage's pip.conf)
    torch_index = '${TORCH_INDEX_URL:-https://download.pytorch.org/whl/${TORCH_VARIANT}}'
    assert f'--index-url "{torch_index}" "torch==${{TORCH_VERSION}}"' in runs
    assert runs.count("download.pytorch.org") == 1
    assert '"${PYPI_INDEX_URL:-https://pypi.org/simple}" > /etc/pip.conf' in runs


def test_builder_copies_every_package_the_project_installs():
    _, stages = parse_dockerfile()
    copied = set()
    for args in stages[0].all("COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        copied.update(p.rstrip("/") for p in parts[:-1])
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = set(pyproject["tool"]["setuptools"]["package-dir"].values())  # the folders installed under elcrec
    readme = pyproject["project"].get("readme")
    assert packages <= copied, f"Dockerfile does not COPY {sorted(packages - copied)}"
    assert {"pyproject.toml", readme} <= copied
    for src in copied:
        assert (REPO / src).exists(), f"COPY source {src} does not exist"


def test_dockerignore_keeps_the_context_small_but_not_the_sources():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".git", ".venv", ".env", "artifacts", "tests"):
        assert excluded in patterns, f".dockerignore should exclude {excluded}"
    _, stages = parse_dockerfile()
    needed = {p for args in stages[0].all("COPY") for p in args.split()[:-1] if not p.startswith("--")}
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        for src in needed:
            assert not re.fullmatch(pattern.replace(".", r"\.").replace("*", ".*"), src), (
                f".dockerignore pattern {pattern} excludes {src}, which the Dockerfile copies"
            )
