"""Fixtures for the products tests: the app in process (``api``), user tokens minted with the deployment's
keys, service tokens, a product factory, and direct database access (for checks the API cannot make)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from services.deploy.keyring import KeyRing
from services.kit import keys
from services.kit.auth import ServiceTokenIssuer
from tests.support.inprocess import InProcessService, serve_in_process
from tests.support.stack import TestStack


def mint_user_token(keyring: KeyRing, roles: list[str], **overrides: Any) -> str:
    """A user access token exactly as the users service issues it (same key, kid and claims)."""
    now = int(time.time())
    claims = {
        "iss": "retail-platform",
        "aud": "retail-api",
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "roles": roles,
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        **overrides,
    }
    key = keys.load_private(keyring.jwt_keys[keyring.active_kid])
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": keyring.active_kid})


@pytest.fixture(scope="session")
def admin_headers(keyring: KeyRing) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_user_token(keyring, ['customer', 'admin'])}"}


@pytest.fixture(scope="session")
def customer_headers(keyring: KeyRing) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_user_token(keyring, ['customer'])}"}


def service_headers(keyring: KeyRing, caller: str) -> dict[str, str]:
    token = ServiceTokenIssuer(caller, keyring.service_keys[caller]).token_for("products")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def orders_headers(keyring: KeyRing) -> dict[str, str]:
    return service_headers(keyring, "orders")


@pytest.fixture(scope="session")
def search_headers(keyring: KeyRing) -> dict[str, str]:
    return service_headers(keyring, "search")


@pytest.fixture(scope="session")
def products_app(stack: TestStack, keyring_jwks_url: str, logdir: Path) -> Iterator[InProcessService]:
    """The products app in the test process (own database), for the request/response tests; the process
    (``products``) serves the tests that need a socket."""
    with serve_in_process("products", {**stack.env_for("products"), "JWKS_URL": keyring_jwks_url}, logdir) as app:
        yield app


@pytest.fixture(scope="session")
def api(products_app: InProcessService) -> httpx.Client:
    return products_app.client


@pytest.fixture
def make_product(api: httpx.Client, admin_headers: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """Create a product (unique sku) and optionally set its stock; returns the product body."""

    def make(stock: int | None = None, **fields: Any) -> dict[str, Any]:
        body = {
            "sku": f"SKU-{uuid.uuid4().hex[:12]}",
            "name": "Test product",
            "category": "tests",
            "price_cents": 1999,
            "currency": "EUR",
            **fields,
        }
        r = api.post("/api/v1/products", json=body, headers=admin_headers)
        assert r.status_code == 201, r.text
        product: dict[str, Any] = r.json()
        if stock is not None:
            r = api.put(f"/api/v1/products/{product['id']}/stock", json={"quantity": stock}, headers=admin_headers)
            assert r.status_code == 200, r.text
            product = r.json()
        return product

    return make


@pytest.fixture(scope="session")
def products_db(products_app: InProcessService) -> str:
    """The name of the database ``api`` serves from (for direct SQL checks via psql)."""
    return products_app.env["DATABASE_URL"].rsplit("/", 1)[1]
