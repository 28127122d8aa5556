"""Schemathesis over the users service's own OpenAPI: every check, positive and negative data, all phases
(examples, coverage, fuzzing, stateful). Zero 5xx and zero schema violations, so every status a route can
return is documented and every body matches its schema.

It runs against a users process of its own: fuzzed logins fail by the hundred, and those failures must
not throttle the service the other tests use.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
MAX_EXAMPLES = "25"


@pytest.fixture(scope="module")
def fuzz_target(stack: TestStack, logdir: Path) -> Iterator[ServiceProcess]:
    proc = ServiceProcess("users", stack.env_for("users"), logdir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def logout_token(fuzz_target: ServiceProcess) -> str:
    """A session of its own for the logout run, made before any fuzzing: the fuzzed logins all come from this
    machine's address, and once they pass the per-client failure limit, even a correct login from here is
    refused (429) for the rest of the window."""
    email, password = "fuzz-logout@example.com", "fuzz-logout-password"
    r = httpx.post(f"{fuzz_target.url}/api/v1/users", json={"email": email, "password": password, "name": "F"})
    assert r.status_code == 201, r.text
    return _token(fuzz_target, email, password)


def _token(proc: ServiceProcess, email: str, password: str) -> str:
    r = httpx.post(f"{proc.url}/api/v1/sessions", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    return str(r.json()["access_token"])


def _schemathesis(proc: ServiceProcess, token: str, *selection: str) -> None:
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{proc.url}/openapi.json",
            "--checks",
            "all",
            "--mode",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            MAX_EXAMPLES,
            "--request-timeout",
            "15",
            "--header",
            f"Authorization: Bearer {token}",
            *selection,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, (
        f"{result.stdout[-15000:]}\n{result.stderr[-3000:]}\n--- service log ---\n{proc.tail(3000)}"
    )
    assert " passed" in result.stdout


@pytest.mark.slow
@pytest.mark.usefixtures("logout_token")  # made before this run's fuzzed logins use up the address's limit
def test_every_operation_conforms_to_its_schema(fuzz_target: ServiceProcess) -> None:
    """All operations but logout, as the admin (who may read any user, so the stateful phase can follow
    POST /users to GET /users/{id} and expect a 200; for anyone else a stranger's id is 404 by design)."""
    token = _token(fuzz_target, fuzz_target.env["ADMIN_EMAIL"], fuzz_target.env["ADMIN_PASSWORD"])
    _schemathesis(fuzz_target, token, "--exclude-operation-id", "delete_current_session")


@pytest.mark.slow
def test_logout_conforms_to_its_schema(fuzz_target: ServiceProcess, logout_token: str) -> None:
    """Logout on its own, with a session of its own: once revoked, the token is refused (401, documented),
    which would otherwise starve every other operation of a valid token."""
    _schemathesis(fuzz_target, logout_token, "--include-operation-id", "delete_current_session")
