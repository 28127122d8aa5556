"""Shared fixtures: one real PostgreSQL per test session, the deployment's keys, service processes.

Nothing is mocked at the database: the server is PostgreSQL itself, started from the machine's
binaries (``services.runner.postgres``), and each service gets a database of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.runner.keyring import KeyRing
from services.runner.postgres import PostgresServer
from tests.support.procs import ServiceProcess, free_port
from tests.support.stack import ADMIN_EMAIL, ADMIN_PASSWORD, TestStack


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer(port=free_port())
    server.init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def keyring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture(scope="session")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def stack(pg: PostgresServer, keyring: KeyRing, logdir: Path) -> Iterator[TestStack]:
    """Session-wide services (users, products, search...): started on first use, stopped at the end."""
    s = TestStack(pg, keyring, logdir)
    yield s
    s.stop_all()


@pytest.fixture(scope="session")
def users(stack: TestStack) -> ServiceProcess:
    return stack.running.get("users") or stack.start("users")


@pytest.fixture(scope="session")
def admin_token(users: ServiceProcess) -> str:
    r = httpx.post(f"{users.url}/api/v1/sessions", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["access_token"])
