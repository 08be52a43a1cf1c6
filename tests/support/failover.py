"""Events sent through the service while a Redis primary dies, and the check that none acknowledged was lost:
shared by the Redis Cluster and Sentinel failover tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.support.service import AppClient


class EventRounds:
    """Each round sends one event (a new item) per user and records which were acknowledged."""

    def __init__(self, client: AppClient, users: list[str]) -> None:
        self.client, self.users = client, users
        self.acked: dict[str, list[str]] = {u: [] for u in users}
        self.codes: list[int] = []
        self.rounds = 0

    async def send(self) -> list[int]:
        codes = []
        for user in self.users:
            item = f"{user}-e{self.rounds}"
            r = await self.client.post(f"/v1/users/{user}/events", json={"item_ids": [item]})
            codes.append(r.status_code)
            if r.status_code == 200:
                self.acked[user].append(item)
            else:  # refused without Redis internals
                assert r.json()["detail"] == "the history store (Redis) is unavailable", r.text
        self.rounds += 1
        self.codes += codes
        return codes

    async def until_all_acknowledged(self, ready: Callable[[], bool], timeout: float = 60) -> None:
        """Rounds until `ready()` and one whole round acknowledged."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            codes = await self.send()
            if all(code == 200 for code in codes) and ready():
                return
            assert asyncio.get_running_loop().time() < deadline, f"not recovered in {timeout:.0f} s"
            await asyncio.sleep(0.2)

    def check(self, events: list[tuple[str, str]]) -> None:
        """`events`: (user, item) of every stream entry. Nothing acknowledged is lost, and the acknowledged keep
        their order (a refused one may be there too: it may have reached the primary before its reply was lost)."""
        assert set(self.codes) <= {200, 503} and 503 in self.codes
        for user in self.users:
            written = [item for u, item in events if u == user]
            assert [item for item in written if item in set(self.acked[user])] == self.acked[user]
