"""The service's intra-op thread count when ELCREC_THREADS is unset: from the CPUs the process may use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from elcrec.service.settings import default_threads, usable_cpus
from tests.support.service import running_app, settings_for

pytestmark = pytest.mark.anyio


def test_a_quarter_of_the_usable_cpus_and_at_least_one() -> None:
    assert [default_threads(n) for n in (1, 2, 3, 4, 8, 16, 64)] == [1, 1, 1, 1, 2, 4, 16]


def test_usable_cpus_follow_the_affinity() -> None:
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))


async def test_the_app_sets_the_chosen_or_the_given_count(store: Path) -> None:
    async with running_app(settings_for(store)):
        assert torch.get_num_threads() == default_threads(usable_cpus())
    async with running_app(settings_for(store, threads=3)):
        assert torch.get_num_threads() == 3
