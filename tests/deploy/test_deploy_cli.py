"""Every `elcrec ...` command line in the Dockerfile, compose and Kubernetes parses against the real CLI."""

from __future__ import annotations

import json
import re

import pytest
from deploy_support import DOCKERFILE, compose, k8s_documents, pod_spec

typer_main = pytest.importorskip("typer.main")
# Typer may vendor its own click, so groups and usage errors are recognised by shape, not by class.


def elcrec_cli():
    cli = pytest.importorskip("elcrec.cli", reason="the elcrec CLI (elcrec.cli) is not importable")
    return typer_main.get_command(cli.app)


def invocations() -> list[tuple[str, list[str]]]:
    """(where, argv after `elcrec`) for every elcrec command the deployment runs."""
    found: list[tuple[str, list[str]]] = []
    cmd = [line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if line.startswith("CMD ")]
    found.append(("Dockerfile CMD", json.loads(cmd[-1][4:])))
    for name, service in compose()["services"].items():
        if service["image"].startswith("${ELCREC_IMAGE") and ("command" in service or "entrypoint" in service):
            # an entrypoint of `elcrec ...` takes the command as further options (the retrain job)
            entry = service.get("entrypoint", ["elcrec"])
            assert entry[0] == "elcrec", f"compose {name}: entrypoint {entry} is not the elcrec CLI"
            argv = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", a) for a in [*entry[1:], *service.get("command", [])]]
            found.append((f"compose {name}", argv))
    config = next(d for _, d in k8s_documents() if d["kind"] == "ConfigMap")["data"]
    for path, doc in k8s_documents():
        spec = pod_spec(doc)
        for c in (spec.get("initContainers", []) + spec["containers"]) if spec else []:
            if c["image"].startswith("elcrec:") and "command" not in c:
                argv = [re.sub(r"\$\((\w+)\)", lambda m: config[m.group(1)], a) for a in c["args"]]
                found.append((f"{path.name} {c['name']}", argv))
    return found


@pytest.mark.parametrize("where,argv", invocations(), ids=[w for w, _ in invocations()])
def test_command_line_parses(where, argv):
    group = elcrec_cli()
    command, rest, names = group, list(argv), []
    while hasattr(command, "commands") and hasattr(command, "get_command"):
        assert rest, f"{where}: no subcommand after {names}"
        name = rest.pop(0)
        sub = command.get_command(command.context_class(command), name)
        if sub is None:
            if name == "retrain":
                pytest.skip("`elcrec retrain` is not implemented in elcrec/cli.py yet")
            pytest.fail(f"{where}: elcrec has no command {' '.join([*names, name])!r}")
        command, names = sub, [*names, name]
    assert names, f"{where}: no elcrec subcommand"
    try:
        command.make_context(" ".join(["elcrec", *names]), rest)
    except Exception as exc:  # click's UsageError family (BadParameter, NoSuchOption, MissingParameter...)
        if not hasattr(exc, "format_message"):
            raise
        pytest.fail(f"{where}: `elcrec {' '.join(argv)}`: {exc.format_message()}")
