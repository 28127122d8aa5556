"""Payments fixtures: the service as a real process with its own database."""

from __future__ import annotations

import pytest

from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack


@pytest.fixture(scope="session")
def payments(stack: TestStack, keyring_jwks_url: str) -> ServiceProcess:
    """Started once per session; user tokens verify against the keyring's JWKS (the users service's keys)."""
    return stack.running.get("payments") or stack.start("payments", JWKS_URL=keyring_jwks_url)
