"""End to end: `elcrec serve` on a tiny trained model with a real redis-server; events with new users and
new items go in over HTTP; `elcrec retrain` publishes a version that the running service picks up by itself
and that knows the new items, while a request loop running the whole time sees no failed request."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.retrain import ELCREC_CLI, clean_env, run_cli, wait_for, watermark
from tests.support.service import serve_process

NEW_ITEMS = ["sku-a", "sku-b", "sku-c", "sku-d"]


@pytest.fixture
def served(store: Path, redis_url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    if not ELCREC_CLI.is_file():
        pytest.skip(f"the elcrec command is not installed beside the interpreter ({ELCREC_CLI})")
    env = clean_env(
        ELCREC_REDIS_URL=redis_url, ELCREC_POLL_INTERVAL_S="0.2", ELCREC_DEVICE="cpu", ELCREC_THREADS="1"
    )
    with serve_process(store, env, tmp_path / "serve.log") as served_process:
        yield served_process.client


class RequestLoop(threading.Thread):
    """Recommends for an explicit history of base items, over and over, and counts the outcomes."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.stop = threading.Event()
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as c:
            while not self.stop.is_set():
                try:
                    r = c.post("/v1/recommend", json={"history": ["1", "2", "3"], "k": 5})
                    if r.status_code == 200 and len(r.json()["items"]) == 5:
                        self.versions[r.json()["model_version"]] += 1
                    else:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.stop.wait(0.02)  # a steady trickle; the box is shared with training


def test_retrain_publishes_and_the_running_service_switches_without_failing_a_request(
    served: httpx.Client, store: Path, base: Path, redis_url: str
) -> None:
    c = served
    assert c.get("/v1/model").json()["version"] == "v0001"
    loop = RequestLoop(str(c.base_url))
    loop.start()
    try:
        # Events through the API: new users with new items, and base users whose histories grow.
        for i in range(12):
            items = [
                NEW_ITEMS[i % 4],
                str(1 + i),
                NEW_ITEMS[(i + 1) % 4],
                str(20 + i),
                NEW_ITEMS[(i + 2) % 4],
            ]
            items += [str(40 + i), NEW_ITEMS[(i + 3) % 4]]
            r = c.post(f"/v1/users/shopper-{i}/events", json={"item_ids": items})
            assert r.status_code == 200 and set(r.json()["unknown_items"]) <= set(NEW_ITEMS)
        for user in ("1", "2", "3"):
            assert c.post(f"/v1/users/{user}/events", json={"item_ids": ["sku-a", "9"]}).status_code == 200
        unknown = c.post("/v1/recommend", json={"history": ["sku-a", "1"]})
        assert unknown.status_code == 422 and "sku-a" in unknown.text  # v0001 does not know it yet

        # Intents of base users whose histories the events leave alone, asked with their histories.
        histories = {line.split()[0]: line.split()[1:] for line in base.read_text().splitlines()[10:70]}

        def intents() -> dict[str, int]:
            return {
                u: c.post("/v1/recommend", json={"history": h, "k": 1}).json()["intent"]["id"]
                for u, h in histories.items()
            }

        before = intents()
        code, summary, err = run_cli(
            ["--artifacts", str(store), "--data", str(base), "--redis", redis_url]
            + ["--device", "cpu", "--epochs", "2", "--gate-tolerance", "1.0"]
        )
        assert (code, summary["status"], summary["published"]) == (0, "published", "v0002"), err
        assert summary["events"]["used"] == 15 and summary["events"]["new_users"] == 12
        assert summary["events"]["new_items"] == 4 and summary["events"]["updated_users"] == 3
        mark = watermark(redis_url)
        assert mark is not None and summary["watermark"] == {"before": None, "after": mark}
        assert (store / "data" / "v0002.txt").is_file()

        # The service finds the new version by itself (it polls CURRENT) ...
        wait_for(lambda: c.get("/v1/model").json()["version"] == "v0002", 30, "the service to serve v0002")
        model = c.get("/v1/model").json()
        assert (
            model["n_items"] == 64 and model["parent"] == "v0001" and model["origin"]["kind"] == "retrained"
        )

        # Intent ids survive the retrain: the new centers were renumbered to match v0001's.
        assert summary["intents"]["matched"] and model["origin"]["intent_ids"] == summary["intents"]
        after = intents()
        kept = sum(before[u] == after[u] for u in histories) / len(histories)
        print(f"intent ids kept over HTTP: {kept:.0%} of {len(histories)} users; job: {summary['intents']}")
        assert kept >= 0.5

        # ... and now knows, and recommends, the new items.
        r = c.post("/v1/recommend", json={"history": ["sku-a", "1", "sku-b"], "k": 10})
        assert r.status_code == 200 and r.json()["model_version"] == "v0002", r.text
        everything = c.post("/v1/recommend", json={"history": ["sku-c"], "k": 64, "exclude_seen": False})
        assert set(NEW_ITEMS) <= {it["item_id"] for it in everything.json()["items"]}
        intent = c.get("/v1/users/shopper-0/intent").json()  # its stored history is all known now
        assert intent["history_length"] == 7 and intent["model_version"] == "v0002"
        wait_for(lambda: loop.versions["v0002"] >= 3, 15, "the request loop to be answered by v0002")
    finally:
        loop.stop.set()
        loop.join(timeout=15)
    assert loop.failures == [], loop.failures[:5]
    assert loop.versions["v0001"] > 0 and loop.versions["v0002"] > 0, loop.versions
