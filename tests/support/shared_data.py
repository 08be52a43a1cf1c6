"""Where the shared benchmark files live; tests that need them skip with a clear reason otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("ELCREC_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
OFFICIAL_TOYS = SHARED / "official" / "ELCRec-Toys_and_Games-1.pt"
DATA = SHARED / "data"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: set ELCREC_SHARED to the shared folder (data/, official/) to run this test")
    return path
