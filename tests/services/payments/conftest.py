"""Payments fixtures: the service as a real process with its own database, and a JWKS for user tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.runner.keyring import KeyRing
from tests.services.payments.support import JWKSServer, serve_jwks
from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack


@pytest.fixture(scope="session")
def jwks(keyring: KeyRing) -> Iterator[JWKSServer]:
    server = serve_jwks(keyring)
    yield server
    server.close()


@pytest.fixture(scope="session")
def payments(stack: TestStack, jwks: JWKSServer) -> ServiceProcess:
    return stack.running.get("payments") or stack.start("payments", JWKS_URL=jwks.url)
