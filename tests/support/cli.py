"""The command line as a user runs it: `python -m elcrec ...` in a process of its own."""

from __future__ import annotations

import subprocess
import sys

ELCREC = [sys.executable, "-m", "elcrec"]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ELCREC, *args], capture_output=True, text=True, timeout=timeout)
