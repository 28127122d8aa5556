"""Fixtures of the users-service tests.

``usvc`` is a users app of its own (its own database), served in the test process, that trusts
X-Forwarded-For from loopback (the in-process client's address), so each test can log in from its own
client address: failed logins in one test never throttle
another, nor the session-wide ``users`` service other teams' tests log in to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.users.support import Api
from tests.support.inprocess import InProcessService, serve_in_process
from tests.support.stack import TestStack

TRUST_LOOPBACK = {"TRUSTED_PROXIES": "127.0.0.1/32,::1/128"}


@pytest.fixture(scope="session")
def usvc(stack: TestStack, logdir: Path) -> Iterator[InProcessService]:
    with serve_in_process("users", {**stack.env_for("users"), **TRUST_LOOPBACK}, logdir) as app:
        yield app


@pytest.fixture(scope="session")
def api(usvc: InProcessService) -> Api:
    return Api(usvc.client, usvc.async_client)
