"""Property-based run against the served OpenAPI document: no 5xx on any generated input.

Schemathesis turns `/openapi.json` into Hypothesis strategies (bodies, query and path
parameters) for every operation; each generated case is sent, authenticated, to the real
app. The number of cases tried is printed (`-s`) and checked.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.server.factories import make_optimization  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("LEVERED_SCHEMATHESIS_EXAMPLES", "25"))


def test_no_server_errors_on_schema_generated_requests(server, org):
    make_optimization(org)  # so lists, serves and previews have something to chew on
    schema = schemathesis.openapi.from_asgi("/openapi.json", server.app)
    headers = {"Authorization": f"Bearer {org.key}"}
    tried: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    def check(operation):
        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call(headers=headers)
            tried[operation.label] = tried.get(operation.label, 0) + 1
            assert response.status_code < 500, (case.method, case.formatted_path, case.body,
                                                response.text)

        run()

    for operation in operations:
        check(operation)
    total = sum(tried.values())
    print(f"schemathesis: {total} generated requests over {len(tried)} operations, no 5xx")
    assert len(tried) == len(operations) and total >= 5 * len(operations)
