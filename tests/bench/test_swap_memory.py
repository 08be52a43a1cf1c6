"""bench.swap_memory's figures: the per-swap slope that the memory test bounds."""

from __future__ import annotations

import pytest

from bench.swap_memory import report, slope


def test_the_slope_is_a_steady_growth_per_swap_and_ignores_one_step() -> None:
    swaps = [float(n) for n in range(4, 21)]
    assert slope(swaps, [300 + 1.3 * n for n in swaps]) == pytest.approx(1.3)
    # one allocator step of 3 MiB in the first or last few swaps (a least-squares line tilts by 0.11-0.15 MiB a swap)
    for at in (6, 18):
        assert slope(swaps, [300.0 + (3.0 if n >= at else 0.0) for n in swaps]) == 0.0
    assert slope([1.0], [300.0]) == 0.0


def test_the_report_reads_first_last_and_the_slope_from_the_fit_swap_on() -> None:
    rss = [290.0, 300.0, 305.0, 306.0] + [306.0 + 0.5 * i for i in range(1, 10)]
    result = {"samples": [{"swap": n, "rss_mib": r} for n, r in enumerate(rss)], "requests_ok": 10,
              "requests_failed": 0}
    got = report(result, fit_from=4)
    assert got["swaps"] == 12 and got["rss_before_mib"] == 290.0 and got["rss_after_first_mib"] == 300.0
    assert got["rss_after_last_mib"] == 310.5 and got["growth_first_to_last_mib"] == 10.5
    assert got["slope_mib_per_swap"] == 0.5
