"""docs/CONFIGURATION.md against the code: every ELCREC_* variable the code reads is in the table, every variable in
the table is read somewhere, and the service's defaults are the ones the settings declare."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from elcrec.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "CONFIGURATION.md"
# Python that reads variables by name (the service's own come from Settings below), and the compose file.
PACKAGES = ("elcrec", "model", "training", "service", "bench", "tests")
PY_READS = re.compile(
    r"""(?:environ\.get\(|environ\[|getenv\(|envvar=)\s*["'](ELCREC_[A-Z0-9_]+)["']"""
)
COMPOSE_READS = re.compile(r"\$\{(ELCREC_[A-Z0-9_]+)")
ROW = re.compile(r"^\| `(ELCREC_[A-Z0-9_]+)` \| ([^|]+) \|")


def table() -> dict[str, str]:
    """Variable -> the default column as written (backticks stripped)."""
    rows = {}
    for line in TABLE.read_text().splitlines():
        match = ROW.match(line)
        if match:
            assert match[1] not in rows, f"{match[1]} is listed twice in {TABLE.name}"
            rows[match[1]] = match[2].strip().strip("`")
    return rows


def settings_variables() -> dict[str, object]:
    prefix = Settings.model_config["env_prefix"]
    return {prefix + name.upper(): field.default for name, field in Settings.model_fields.items()}


def variables_read_by_name() -> dict[str, set[str]]:
    """Variable -> the files that read it by name."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for name in PY_READS.findall(path.read_text()):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    for name in COMPOSE_READS.findall((ROOT / "docker-compose.yml").read_text()):
        found.setdefault(name, set()).add("docker-compose.yml")
    return found


def written(default: object) -> str:
    """A settings default as the table writes it."""
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, SecretStr):
        return default.get_secret_value() or "empty"
    return str(default) if str(default) else "empty"


def test_the_table_lists_every_variable_the_code_reads() -> None:
    listed = set(table())
    read = set(settings_variables()) | set(variables_read_by_name())
    missing = sorted(read - listed)
    assert not missing, f"read by the code but not in docs/CONFIGURATION.md: {missing}"


def test_every_variable_in_the_table_is_read_by_the_code() -> None:
    read = set(settings_variables()) | set(variables_read_by_name())
    stale = sorted(set(table()) - read)
    assert not stale, f"in docs/CONFIGURATION.md but read nowhere: {stale}"


def test_the_table_gives_the_settings_defaults() -> None:
    rows = table()
    wrong = {name: (rows[name], written(default)) for name, default in settings_variables().items()
             if rows.get(name) != written(default)}
    assert not wrong, f"default in the table, default in service/settings.py: {wrong}"


def test_the_table_gives_the_compose_defaults() -> None:
    rows = table()
    compose = (ROOT / "docker-compose.yml").read_text()
    settings = settings_variables()
    for name, default in re.findall(r"\$\{(ELCREC_[A-Z0-9_]+):-([^}]*)\}", compose):
        if name in settings or not default:
            # the stack may choose differently (ELCREC_DEVICE: cpu), or pass an empty value through to the reader's
            # own default (ELCREC_GATE_TOLERANCE: `elcrec retrain`'s): the table gives the reader's default
            continue
        assert rows[name] == (default or "unset"), f"{name}: table {rows[name]!r}, docker-compose.yml {default!r}"
