"""docs/logs holds exactly the epoch logs behind published figures: each one listed once in its index, each one
backing a figure (a run of the results table, or a log a page of the docs cites), and no log of a run in progress."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "docs" / "logs"
INDEX = LOGS / "README.md"


def logs() -> set[str]:
    return {p.name for p in LOGS.iterdir() if p != INDEX}


def index_rows() -> list[str]:
    """The log each row of the index's tables names (its first cell's link)."""
    return re.findall(r"^\| \[([^\]]+)\]\(\1\) \|", INDEX.read_text(), re.M)


def results_logs() -> set[str]:
    runs = json.loads((ROOT / "docs" / "results.json").read_text())["runs"]
    return {Path(run["log"]).name for run in runs}


def test_the_index_lists_every_log_once_and_nothing_else() -> None:
    rows = index_rows()
    assert len(rows) == len(set(rows)), f"listed twice: {sorted({r for r in rows if rows.count(r) > 1})}"
    assert set(rows) == logs(), f"in the folder only: {sorted(logs() - set(rows))}; in the index only: " \
                                f"{sorted(set(rows) - logs())}"


def test_every_run_of_the_results_table_has_its_log() -> None:
    missing = sorted(results_logs() - logs())
    assert not missing, f"results.json names logs that docs/logs lacks: {missing}"


def test_every_log_backs_a_published_figure() -> None:
    pages = [p for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")] if p != INDEX]
    cited = {name for page in pages for name in re.findall(r"logs/([\w.\-]+\.jsonl)", page.read_text())}
    orphans = sorted(logs() - cited - results_logs())
    assert not orphans, f"logs no figure in the docs reads: {orphans}"


def test_no_log_of_a_run_in_progress_is_kept() -> None:
    partial = sorted(name for name in logs() if "partial" in name)
    assert not partial, f"partial logs (commit a run's log when it has ended): {partial}"
    assert all(p.is_file() and p.suffix == ".jsonl" for p in LOGS.iterdir() if p != INDEX), "docs/logs is flat"
