"""Shared fixtures: one real PostgreSQL per test session, the deployment's keys, service processes.

Nothing is mocked at the database: the server is PostgreSQL itself, started from the machine's
binaries (``services.runner.postgres``), and each service gets a database of its own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from services.deploy.keyring import KeyRing
from services.kit import keys
from services.runner.postgres import PostgresServer
from tests.services.payments.support import card_data_left
from tests.support.pgtls import TlsPostgres
from tests.support.procs import ServiceProcess, free_port
from tests.support.stack import ADMIN_EMAIL, ADMIN_PASSWORD, TestStack


@pytest.fixture(scope="session")
def pg(logdir: Path) -> Iterator[PostgresServer]:
    """The session's PostgreSQL. When the session ends, after every test and after every service that used
    it has stopped (they all depend on this fixture), no row of an orders or payments database and no
    service log may hold card data: card numbers and CVCs pass through orders and payments, never stay.
    A finding fails the session as an error in this fixture's teardown, whichever tests ran and in
    whatever order."""
    # Thrown away at the end of the session, so durability buys nothing here.
    server = PostgresServer(port=free_port(), crash_unsafe_for_tests=True)
    server.init()
    server.start()
    yield server
    try:
        left = card_data_left(server, logdir)
    finally:
        server.destroy()
    assert left == [], f"card data stayed after the session's tests: {left}"


@pytest.fixture(scope="session")
def pg_tls() -> Iterator[TlsPostgres]:
    """A second server, with the embedded stack's TLS (``tests/support/pgtls.py``), started only for the tests
    that ask for it: the transport is proven there, while ``pg`` keeps the rest of the suite fast."""
    server = TlsPostgres().start()
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


@pytest.fixture(scope="session")
def keyring_jwks_url(keyring: KeyRing) -> Iterator[str]:
    """A JWKS of the keyring's user-token keys (the same keys the users service signs with), served from
    the test process: services that only verify tokens can be tested without starting users."""
    body = json.dumps(
        {"keys": [keys.jwk(keys.load_private(pem).public_key(), kid) for kid, pem in keyring.jwt_keys.items()]}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()


@pytest.fixture(scope="session")
def products(stack: TestStack, keyring_jwks_url: str) -> ServiceProcess:
    """The products service, started once per session. It verifies user tokens against the users service
    when that runs already, else against the keyring's JWKS (same keys, so tokens from either verify)."""
    if "products" in stack.running:
        return stack.running["products"]
    extra = {} if "users" in stack.running else {"JWKS_URL": keyring_jwks_url}
    return stack.start("products", **extra)
