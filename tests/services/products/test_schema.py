"""Property-based tests over the products OpenAPI: whatever schemathesis sends, the service answers
with a documented status and a body matching the schema, and never a 5xx.

Driven from a plain test (``get_all_operations`` + hypothesis) rather than ``@schema.parametrize``:
schemathesis' pytest plugin does not work with the pytest this project pins.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from schemathesis import checks
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode

from tests.support.procs import ServiceProcess

COMMON = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
# Both valid and invalid data get documented answers and never a 5xx. negative_data_rejection is not
# used: it counts unknown query parameters (ignored, as HTTP APIs do) and the Authorization header this
# test always sends as "invalid data accepted"; the contract tests check the real 4xx paths one by one.
CHECKS = {GenerationMode.POSITIVE: COMMON, GenerationMode.NEGATIVE: COMMON}


def _explore(operation: Any, mode: GenerationMode, headers: dict[str, str], seen: Counter[str]) -> None:
    @hypothesis.settings(
        max_examples=30, deadline=None, database=None, suppress_health_check=list(hypothesis.HealthCheck)
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS[mode])
        seen[f"{operation.label} {response.status_code}"] += 1

    run()


def test_no_5xx_and_no_schema_violation_on_any_operation(
    products: ServiceProcess,
    admin_headers: dict[str, str],
    orders_headers: dict[str, str],
    search_headers: dict[str, str],
) -> None:
    """Each route runs with the credential that reaches its logic (admin for catalogue writes, orders for
    reservations, search for the feed), so generated data exercises validation and SQL, not only 401s."""
    schema = schemathesis.openapi.from_url(f"{products.url}/openapi.json")
    failures: list[str] = []
    tested: set[str] = set()
    seen: Counter[str] = Counter()
    no_invalid_input: set[str] = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the service's OpenAPI has an invalid operation: {result}"
        operation = result.ok()
        path = operation.path
        if path.startswith("/internal/v1/reservations"):
            headers = orders_headers
        elif path.startswith("/internal/v1/changes"):
            headers = search_headers
        else:
            headers = admin_headers
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _explore(operation, mode, headers, seen)
            except hypothesis.errors.Unsatisfiable:
                no_invalid_input.add(operation.label)  # nothing to break: the operation takes no input
            except Exception as exc:
                failures.append(f"{operation.label} [{mode}]: {exc}")
        tested.add(operation.label)
    assert failures == [], "\n\n".join(failures)
    # Every public and internal route was exercised (plus /healthz and /readyz)...
    assert len(tested) == 15, tested
    assert no_invalid_input == {"GET /healthz", "GET /readyz", "GET /api/v1/categories"}
    # ...and the generated data got past authentication into the handlers.
    assert seen["POST /api/v1/products 201"] > 0, seen
    assert seen["GET /internal/v1/changes 200"] > 0, seen
