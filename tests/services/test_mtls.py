"""Mutual TLS between the services on one machine, with real processes: what a service refuses and accepts.

Every service behind the gateway, and the gateway, run here as the one-machine runner runs them: each with
its own identity from a local CA (``services.runner.tls``), served by ``services.deploy.serve``. A service
with an identity serves HTTPS only and requires a client certificate from its CA at the handshake, on every
path. So a checkout that works through the gateway proves that every hop it took (gateway to orders, orders
to products and payments, each service to the users service's JWKS) was mutual TLS: none of those
processes accepts a connection of any other kind, as the first tests here show for each of them.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from services.deploy.keyring import KeyRing
from services.runner.postgres import PostgresServer
from services.runner.tls import LocalCA
from tests.support.procs import served_serial
from tests.support.stack import ADMIN_EMAIL, ADMIN_PASSWORD, TestStack, start_order

CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
# A path of each kind: operational, public, and a service-to-service one (products' stock reservations).
PATHS = ("/healthz", "/api/v1/products", "/internal/v1/reservations")


@pytest.fixture(scope="module")
def tls_stack(
    pg: PostgresServer, keyring: KeyRing, logdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestStack]:
    base = tmp_path_factory.mktemp("mtls")
    stack = TestStack(pg, keyring, logdir, ca=LocalCA(base / "ca", base / "identities"))
    try:
        for name in start_order():
            # Cheap password hashes: what is under test is the transport, not argon2's cost. A renewed identity
            # is looked for every second, so the renewal test needs no long wait.
            extra = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "8192"} if name == "users" else {}
            stack.start(name, TLS_RELOAD_INTERVAL_S="1", **extra)
        stack.start("gateway", TLS_RELOAD_INTERVAL_S="1", RATE_LIMIT_STATE_PATH=str(base / "buckets.bin"))
        yield stack
    finally:
        stack.stop_all()


def _client(ctx: ssl.SSLContext | bool) -> httpx.Client:
    return httpx.Client(verify=ctx, timeout=5.0, trust_env=False)


def _without_certificate(stack: TestStack) -> ssl.SSLContext:
    """A client that verifies the services (it trusts their CA) but presents no certificate of its own."""
    assert stack.ca is not None
    ctx = ssl.create_default_context(cafile=str(stack.ca.ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def _refused(client: httpx.Client, url: str) -> bool:
    """True when the connection ends before an answer: TLS 1.3 completes the client's side of the handshake
    first, so a server's refusal of the client certificate arrives as an alert on the first read."""
    try:
        client.get(url)
    except httpx.TransportError:
        return True
    return False


def test_every_service_refuses_plaintext_http(tls_stack: TestStack) -> None:
    """No service answers plain HTTP, on any path: there is no unencrypted way in, and so no unencrypted hop."""
    with _client(False) as plain:
        for name, proc in tls_stack.running.items():
            for path in PATHS:
                assert _refused(plain, f"http://127.0.0.1:{proc.port}{path}"), f"{name} answered plain HTTP on {path}"


def test_tls_without_a_client_certificate_is_refused_on_internal_routes_and_everywhere(tls_stack: TestStack) -> None:
    """The same TLS connection that a service accepts with a client certificate from the stack's CA is refused
    without one, on /internal/* as on every other path (the refusal is the handshake's, before any route)."""
    with _client(tls_stack.client_context()) as valid, _client(_without_certificate(tls_stack)) as anonymous:
        for name, proc in tls_stack.running.items():
            assert valid.get(f"{proc.url}/healthz").status_code == 200, name
            for path in PATHS:
                assert _refused(anonymous, f"{proc.url}{path}"), f"{name} accepted no certificate on {path}"


def test_a_certificate_from_another_ca_is_refused_even_with_a_peer_s_name(tls_stack: TestStack, tmp_path: Path) -> None:
    """An identity named like a legitimate caller ("orders") but issued by another CA gets nowhere: what counts
    is the signature of the stack's CA, not the name."""
    foreign_ca = LocalCA(tmp_path / "ca", tmp_path / "identities")
    forged = foreign_ca.issue("orders")
    assert tls_stack.ca is not None
    ctx = ssl.create_default_context(cafile=str(tls_stack.ca.ca_file))
    ctx.load_cert_chain(forged)
    with _client(ctx) as impostor, _client(tls_stack.client_context()) as valid:
        for name, proc in tls_stack.running.items():
            assert valid.get(f"{proc.url}/healthz").status_code == 200, name
            for path in PATHS:
                assert _refused(impostor, f"{proc.url}{path}"), f"{name} accepted a foreign certificate on {path}"


def test_a_valid_identity_is_accepted_and_the_service_token_is_still_required(tls_stack: TestStack) -> None:
    """The certificate admits the connection; each route's own checks still apply: an /internal route without
    a service token is 401, whoever holds a certificate."""
    products = tls_stack.running["products"]
    with _client(tls_stack.client_context()) as client:
        assert client.get(f"{products.url}/api/v1/products", params={"limit": 1}).status_code == 200
        assert client.post(f"{products.url}/internal/v1/reservations", json={}).status_code == 401


def test_a_checkout_through_the_gateway_works_with_every_hop_on_mutual_tls(tls_stack: TestStack) -> None:
    """Sign up, log in, and buy through the gateway, with every service on mutual TLS: the gateway forwards over
    it, orders calls products and payments over it, the services fetch the JWKS over it (see the module's
    docstring for why that covers every hop)."""
    gw = tls_stack.running["gateway"].url
    with _client(tls_stack.client_context()) as c:
        admin = c.post(f"{gw}/api/v1/sessions", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert admin.status_code == 201, admin.text
        as_admin = {"authorization": f"Bearer {admin.json()['access_token']}"}
        product = c.post(
            f"{gw}/api/v1/products",
            headers=as_admin,
            json={
                "sku": f"TLS-{uuid.uuid4().hex[:8]}",
                "name": "Sealed kettle",
                "category": "kitchen",
                "price_cents": 1999,
                "currency": "EUR",
            },
        )
        assert product.status_code == 201, product.text
        product_id = product.json()["id"]
        stocked = c.put(f"{gw}/api/v1/products/{product_id}/stock", headers=as_admin, json={"quantity": 5})
        assert stocked.status_code == 200, stocked.text

        email, password = f"tls-{uuid.uuid4().hex[:8]}@example.com", "a-long-password"
        assert c.post(f"{gw}/api/v1/users", json={"email": email, "password": password, "name": "T"}).status_code == 201
        login = c.post(f"{gw}/api/v1/sessions", json={"email": email, "password": password})
        auth = {"authorization": f"Bearer {login.json()['access_token']}"}
        order = c.post(
            f"{gw}/api/v1/orders",
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
            json={"items": [{"product_id": product_id, "quantity": 2}], "payment": {"card": CARD}},
        )
        assert order.status_code == 201, order.text
        assert order.json()["status"] == "confirmed"
        assert c.get(f"{gw}/api/v1/products/{product_id}").json()["stock_available"] == 3
        assert c.get(f"{gw}/readyz/upstreams").status_code == 200


def test_an_identity_renewed_by_the_runner_is_served_without_a_restart(tls_stack: TestStack) -> None:
    """The runner renews an identity (a new key and certificate replacing the file by rename, ``LocalCA.issue``,
    which ``renew_due`` calls once a third of its life is left); the running service then serves the new
    certificate on its next connections, in the same process."""
    assert tls_stack.ca is not None
    products = tls_stack.running["products"]
    assert products.proc is not None
    pid = products.proc.pid
    ctx = tls_stack.client_context()
    before = served_serial(products.port, ctx, "127.0.0.1")
    renewed = x509.load_pem_x509_certificate(tls_stack.ca.issue("products").read_bytes()).serial_number
    deadline = time.monotonic() + 15
    while (served := served_serial(products.port, ctx, "127.0.0.1")) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served == renewed != before
    assert products.proc.pid == pid, "restarted"
    assert products.proc.poll() is None
