"""Generated bad input: schemathesis fuzzes every operation of the service's own OpenAPI document, in-process
over ASGI with the real lifespan and a real Redis. No 5xx, every response documented and matching its schema,
schema-invalid input refused with a 4xx, and no Redis key outside the service's namespace touched.

Bounded and deterministic: MAX_EXAMPLES cases per operation and mode, derandomized, no example database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from elcrec.service.main import create_app
from tests.support.service import TOKEN, RedisServer, settings_for

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a test dependency (pyproject dev)")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402  (installed with schemathesis)
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import load_all_checks  # noqa: E402
from schemathesis.python import asgi  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

MAX_EXAMPLES = 25
CANARY = {"secret": "untouched", "elcrec:events-copy": "untouched"}


def _refusal_is_semantic(mode: GenerationMode, response: schemathesis.Response) -> None:
    """Replaces schemathesis' positive_data_acceptance, which wants every schema-valid request accepted.
    Some refusals depend on the served model, not the schema (unknown item ids, k beyond the catalog): those
    are 422s with a message. A 422 listing field errors for schema-valid input would mean the schema and the
    validation disagree, which is what that check is for."""
    if mode is GenerationMode.POSITIVE and response.status_code == 422:
        detail = response.json()["detail"]
        assert isinstance(detail, str), f"schema-valid input failed validation: {detail}"


def case_mode(case: schemathesis.Case) -> GenerationMode:
    assert case.meta is not None
    return case.meta.generation.mode


def test_every_operation_survives_generated_input(store: Path, own_redis: RedisServer) -> None:
    db = redis.Redis.from_url(own_redis.url, decode_responses=True)
    db.mset(CANARY)
    app = create_app(settings_for(store, redis_url=own_redis.url, admin_token=TOKEN))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    load_all_checks()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11
    failures: list[str] = []
    cases = 0
    try:
        for op in operations:
            has_input = bool(list(op.iter_parameters())) or bool(op.body)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if mode is GenerationMode.NEGATIVE and not has_input:
                    continue  # nothing to make invalid

                @given(case=op.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=MAX_EXAMPLES,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def run(case: schemathesis.Case) -> None:
                    nonlocal cases
                    cases += 1
                    response = case.call()
                    case.validate_response(response, excluded_checks=[positive_data_acceptance])
                    _refusal_is_semantic(case_mode(case), response)

                try:
                    run()
                except Exception as exc:  # collected so that one run reports every operation that fails
                    failures.append(f"{op.label} [{mode.value}]:\n{exc}")
        # The happy paths too, which random ids seldom reach: their 200s must match the schema as well.
        by_label = {op.label: op for op in operations}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        happy = [
            ("POST /v1/users/{user_id}/events", {"path_parameters": {"user_id": "u1"}, "body": {"item_ids": ["i1", "i2", "x"]}}),
            ("POST /v1/recommend", {"body": {"user_id": "u1", "history": ["i3"], "k": 5}}),
            ("POST /v1/recommend", {"body": {"user_id": "nobody", "k": 3}}),
            ("GET /v1/users/{user_id}/intent", {"path_parameters": {"user_id": "u1"}}),
            ("GET /v1/intents/{intent_id}", {"path_parameters": {"intent_id": 1}, "query": {"k": 4}}),
            ("POST /v1/admin/reload", {"headers": auth}),
        ]
        for label, parts in happy:
            response = by_label[label].Case(**parts).call_and_validate()
            assert response.status_code == 200, (label, response.text)
    finally:
        asgi.shutdown_lifespans()
    assert not failures, "\n\n".join(failures)
    assert cases >= 9 * 10  # the generator really ran

    keys = set(db.keys("*"))
    assert all(k in CANARY or k == "elcrec:events" or k.startswith("elcrec:hist:") for k in keys), keys
    assert {k: db.get(k) for k in CANARY} == CANARY
    db.close()
