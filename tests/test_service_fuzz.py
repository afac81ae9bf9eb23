"""Fuzzing the OpenAPI schema (schemathesis strategies, run by hypothesis): whatever a
client sends, the service answers with a 2xx or a specific 4xx, never a 5xx. Bounded
examples per operation so it runs in well under a minute; the service under test is a real
one with emulated robots."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from fleet.service.app import Service
from test_service_api import TOKENS, service_settings

EXAMPLES = 8  # per operation, each sent with an operator token and with none


@pytest.fixture(scope="module")
def fuzzed_service(tmp_path_factory):
    svc = Service(service_settings(tmp_path_factory.mktemp("fuzz")))
    svc.runtime.start()
    yield svc
    svc.close()


def test_no_input_gives_a_server_error(fuzzed_service):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_service.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    calls = []

    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            for headers in ({"Authorization": f"Bearer {TOKENS['operator']}"}, {}):
                response = case.call(headers=headers)
                calls.append(response.status_code)
                assert response.status_code < 500, (case.method, case.formatted_path, response.status_code,
                                                    response.text[:300])
                if response.status_code >= 400:
                    assert isinstance(response.json().get("detail"), (str, list)), response.text[:300]
        check()
    assert len(calls) >= 2 * len(operations)
    assert any(200 <= c < 300 for c in calls) and any(400 <= c < 500 for c in calls)
