"""Payments fixtures: the app in the test process for the request/response tests, the service as a real
process where a socket is needed; each with a database of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import InProcessService, serve_in_process
from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack


@pytest.fixture(scope="session")
def payments(stack: TestStack, keyring_jwks_url: str, logdir: Path) -> Iterator[InProcessService]:
    """User tokens verify against the keyring's JWKS (the users service's keys)."""
    with serve_in_process("payments", {**stack.env_for("payments"), "JWKS_URL": keyring_jwks_url}, logdir) as app:
        yield app


@pytest.fixture(scope="session")
def payments_process(stack: TestStack, keyring_jwks_url: str) -> ServiceProcess:
    """Started once per session, shared with the orders tests."""
    return stack.running.get("payments") or stack.start("payments", JWKS_URL=keyring_jwks_url)
