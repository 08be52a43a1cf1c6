"""ELCREC_REDIS_URL is checked at start: an unknown scheme or a malformed Sentinel URL is one message that names
what is wrong and never repeats the value (it may carry a password)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from elcrec.service.settings import Settings


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("foo://:hunter2@host:6379/0", "not foo://"),
        ("redis+sentinel://:hunter2@host/elcrec/0", "sentinel 'host' is not host:port"),
        ("redis+sentinel://:hunter2@host:26379", "give the service name"),
    ],
)
def test_a_bad_redis_url_is_named_without_its_secret(url: str, says: str) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(redis_url=url)
    assert says in str(err.value) and "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    "url", ["redis://h:6379/0", "rediss://h:6380", "unix:///tmp/redis.sock", "redis+sentinel://a:1,b:2/elcrec/0", ""]
)
def test_the_supported_urls_pass(url: str) -> None:
    assert Settings(redis_url=url).redis_url == (url or None)
