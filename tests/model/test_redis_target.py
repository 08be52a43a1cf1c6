"""One place makes the Redis clients of the service (asyncio) and the retraining job (blocking): both reach the same
server through one URL, whether it names one Redis, a Sentinel's primary or a node of a cluster."""

from __future__ import annotations

import pytest

from elcrec.model.redis_target import (
    aclose,
    close,
    cluster_url,
    connect,
    connect_async,
    connect_cluster,
    connect_cluster_async,
    layout_of,
    layout_of_async,
    node_url,
)
from tests.support.redis_sentinel import SentinelSetup

pytestmark = pytest.mark.anyio


async def _both_see(url: str, key: str) -> tuple[str | None, bool, bool]:
    """The job writes `key`; -> what the service reads back, and whether each side takes the server for a cluster."""
    job = connect(url, 5, 5)
    service = connect_async(url, 5, 4, retries=1)
    try:
        job_layout = layout_of(job)
        service_layout = await layout_of_async(service)
        if job_layout.cluster:
            close(job)
            job = connect_cluster(url, 5, 5)  # type: ignore[assignment]
            await aclose(service)
            service = connect_cluster_async(url, 5, 4)  # type: ignore[assignment]
        job.set(key, "from the job")
        return await service.get(key), job_layout.cluster, service_layout.cluster
    finally:
        close(job)
        await aclose(service)


async def test_one_redis_is_reached_alike_by_the_job_and_the_service(redis_url: str) -> None:
    assert await _both_see(redis_url, "elcrec:test:one") == ("from the job", False, False)


async def test_a_sentinel_url_reaches_its_primary_from_both_sides(own_sentinel: SentinelSetup) -> None:
    assert await _both_see(own_sentinel.url, "elcrec:test:sentinel") == ("from the job", False, False)


async def test_a_cluster_is_found_by_both_sides(cluster_url: str) -> None:
    assert await _both_see(cluster_url, "elcrec:test:cluster") == ("from the job", True, True)


def test_cluster_and_node_urls_keep_the_credentials_and_drop_database_zero() -> None:
    assert cluster_url("redis://:pw@h:7000/0") == "redis://:pw@h:7000"
    assert cluster_url("redis://h:7000") == "redis://h:7000"
    assert node_url("rediss://user:pw@h:7000/0", "10.0.0.2", 7001) == "rediss://user:pw@10.0.0.2:7001"
    assert node_url("redis://h:7000", "10.0.0.2", 7001) == "redis://10.0.0.2:7001"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("redis://h:7000/0", "redis://h:7000"),
        ("redis://h:7000", "redis://h:7000"),
        ("redis://h:7000/", "redis://h:7000"),
        ("rediss://:pw@h:7000/0?ssl_cert_reqs=none", "rediss://:pw@h:7000?ssl_cert_reqs=none"),
        ("redis://h:7000/2", "redis://h:7000/2"),  # a database a cluster lacks: left for its client to refuse
    ],
)
def test_a_cluster_url_drops_database_zero_only(url: str, expected: str) -> None:
    assert cluster_url(url) == expected
