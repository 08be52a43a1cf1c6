"""Fixtures for the service tests: tiny model stores, in-process apps, the imported official checkpoint."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.service import (
    ELCREC_CLI,
    OFFICIAL_CHECKPOINT,
    TOKEN,
    TOYS_DATA,
    AppClient,
    add_version,
    clean_env,
    running_app,
    settings_for,
)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    add_version(tmp_path / "store")
    return tmp_path / "store"


@pytest.fixture
async def client(store: Path) -> AsyncIterator[AppClient]:
    """The app on a tiny random model with the in-process history store."""
    async with running_app(settings_for(store, admin_token=TOKEN)) as c:
        yield c


@pytest.fixture(scope="session")
def official_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`elcrec import-official` of the released Toys checkpoint, run once a session as a real command."""
    if not OFFICIAL_CHECKPOINT.is_file() or not TOYS_DATA.is_file():
        pytest.skip(
            f"shared data absent: needs {OFFICIAL_CHECKPOINT} and {TOYS_DATA} "
            "(set ELCREC_SHARED to the shared directory)"
        )
    if not ELCREC_CLI.is_file():
        pytest.skip(
            f"the elcrec command is not installed beside the interpreter ({ELCREC_CLI}); pip install -e ."
        )
    out = tmp_path_factory.mktemp("official") / "store"
    done = subprocess.run(
        [
            str(ELCREC_CLI),
            "import-official",
            str(OFFICIAL_CHECKPOINT),
            "--data",
            str(TOYS_DATA),
            "--out",
            str(out),
            "--no-evaluate",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    return out
