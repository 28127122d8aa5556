"""Schemathesis over a running service's OpenAPI: every operation, generated requests, four checks
(no 5xx, documented status codes, content types, response schemas).

Run in a subprocess by :func:`run` (hypothesis and schemathesis keep global state a test session should
not share); ``/internal`` operations get the service token, the rest the user token.

    python -m tests.support.schema URL USER_TOKEN [SERVICE_TOKEN]
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests.support.procs import ROOT


def run(url: str, user_token: str, service_token: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "tests.support.schema", url, user_token, *([service_token] if service_token else [])]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)


def _checked_calls(operation: Any, token: str) -> Any:
    import hypothesis
    from schemathesis import checks

    @hypothesis.settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(hypothesis.HealthCheck)
    )
    @hypothesis.given(case=operation.as_strategy())
    def call(case: Any) -> None:
        case.call_and_validate(
            headers={"authorization": "Bearer " + token},
            timeout=30,
            checks=[
                checks.not_a_server_error,
                checks.status_code_conformance,
                checks.content_type_conformance,
                checks.response_schema_conformance,
            ],
        )

    return call


def main(url: str, user_token: str, service_token: str | None) -> int:
    import schemathesis
    from schemathesis.core.result import Ok

    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    failures = []
    tested = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"the OpenAPI document has an invalid operation: {result}")
            continue
        operation = result.ok()
        internal = operation.path.startswith("/internal")
        call = _checked_calls(operation, service_token if internal and service_token else user_token)
        try:
            call()
            tested += 1
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    print("\n".join(failures) or f"ok: {tested} operations")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
