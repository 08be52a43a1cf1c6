"""Benchmarks: each module runs as `python -m bench.NAME` (its docstring says what it measures and how)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(result: Any, out: Path | None) -> None:
    """Write a benchmark's figures to `out` (its folder made) as indented JSON; nothing when out is None."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
