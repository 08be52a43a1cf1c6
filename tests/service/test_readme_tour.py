"""The README's "Try it" tour, run as written (curl against `elcrec serve` as a real process) on a model with a
catalog: every answer has the shape the tour's comments promise, so the two cannot drift apart."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.service import ELCREC_CLI, clean_env, serve_process

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "tour-admin-token"


def tour_commands() -> list[str]:
    """The curl lines of the README's "Try it" block, continuation lines joined."""
    section = README.read_text().split("## Try it", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


def cli(*args: str) -> None:
    done = subprocess.run([str(ELCREC_CLI), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A small model on a planted log, ids "1".."80" as in the tour, 4 intents (the tour steers towards intent 3),
    published with its catalog by `elcrec catalog set` as the tour's comment says."""
    data, catalog, out = tmp_path / "syn.txt", tmp_path / "items.csv", tmp_path / "store"
    cli("data", "synthetic", "--out", str(data), "--users", "300", "--items", "80", "--intents", "4",
        "--catalog", str(catalog))
    cli("train", "--data", str(data), "--out", str(out), "--epochs", "2", "--layers", "1", "--hidden", "16",
        "--intents", "4", "--no-progress")
    cli("catalog", "set", str(out), str(catalog))
    return out


def item_shape(item: dict[str, Any]) -> None:
    assert isinstance(item["item_id"], str) and isinstance(item["score"], float) and "intent" in item


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour is curl commands: curl is not installed")
def test_the_readme_tour_runs_as_written_and_each_answer_has_its_promised_shape(store: Path, tmp_path: Path) -> None:
    commands = tour_commands()
    assert len(commands) >= 15, commands
    env = clean_env(ELCREC_ADMIN_TOKEN=TOKEN)
    with serve_process(store, env, tmp_path / "serve.log", ready_timeout=120) as served:
        base = str(served.client.base_url).rstrip("/").removeprefix("http://")
        answers = []
        for command in commands:
            done = subprocess.run(["bash", "-c", command.replace("localhost:8000", base)], capture_output=True,
                                  text=True, timeout=60, env={**env, "ELCREC_ADMIN_TOKEN": TOKEN})
            assert done.returncode == 0 and done.stdout, (command, done.stderr)
            answers.append((command, done.stdout))
    checked = 0
    for command, out in answers:
        if "/metrics" in command:
            assert out.startswith("elcrec_"), out[:200]
            checked += 1
            continue
        body = json.loads(out)
        assert "detail" not in body, (command, body)  # no error anywhere in the tour
        if "/health/ready" in command:
            assert body["ready"] is True
        elif command.endswith("/v1/model"):
            assert body["n_intents"] == 4 and body["version"]
        elif "/events" in command:
            assert body["stored"] == 2
        elif "/v1/recommend" in command:
            assert body["items"] and all(item_shape(it) is None for it in body["items"])
            if '"fields"' in command:
                assert all(set(it["catalog"]) == {"title", "genre"} for it in body["items"])
            if '"diversify"' in command or '"intent"' in command:
                assert all(isinstance(it["intent"], int) for it in body["items"])  # which intent each serves
        elif "/users/alice/intent" in command:
            # the top intent and its runners-up (3 by default), each with probability, share and label
            top = body["intent"]
            assert {"id", "probability", "share", "label", "runners_up"} <= set(top)
            assert len(top["runners_up"]) == 3 and all("probability" in r for r in top["runners_up"])
            assert top["label"]["text"]
        elif "/v1/intents/0" in command:
            assert body["id"] == 0 and body["items"] and body["label"]["text"]
        elif "/v1/intents" in command:
            assert "intents" in body and "health" in body and body["total"] == len(body["intents"]) or (
                "limit=" in command and body["total"] == 4)
        elif "/v1/items/57" in command:
            assert body["item_id"] == "57" and body["catalog"]["title"] == "Item 57"
        elif "/admin/reload" in command:
            assert body["changed"] is False and body["version"]
        else:
            raise AssertionError(f"a tour command this test does not check: {command}")
        checked += 1
    assert checked == len(commands)
