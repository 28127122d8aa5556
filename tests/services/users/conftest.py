"""Fixtures of the users-service tests.

``usvc`` is a users process of its own (its own database) that trusts X-Forwarded-For from loopback,
so each test can log in from its own client address: failed logins in one test never throttle
another, nor the session-wide ``users`` service other teams' tests log in to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.users.support import Api
from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack

TRUST_LOOPBACK = {"TRUSTED_PROXIES": "127.0.0.1/32,::1/128"}


@pytest.fixture(scope="session")
def usvc(stack: TestStack, logdir: Path) -> Iterator[ServiceProcess]:
    proc = ServiceProcess("users", {**stack.env_for("users"), **TRUST_LOOPBACK}, logdir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def api(usvc: ServiceProcess) -> Api:
    return Api(usvc.url)
