"""Orders fixtures: orders, products and payments as real processes, buyers, products with stock."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.deploy.keyring import KeyRing
from tests.services.orders.support import Buyer, make_buyer
from tests.services.payments.support import mint_token
from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack

# Generous timeouts (200 concurrent orders on two busy cores must not time out); the fault tests start
# their own instance with short ones.
ORDERS_ENV = {
    "PRODUCTS_TIMEOUT_S": "20",
    "PAYMENTS_TIMEOUT_S": "20",
    "RECOVERY_INTERVAL_S": "1",
    "RECOVERY_STUCK_AFTER_S": "150",
    "DB_POOL_MAX": "20",
}


@pytest.fixture(scope="session")
def payments(stack: TestStack, keyring_jwks_url: str) -> ServiceProcess:
    return stack.running.get("payments") or stack.start("payments", JWKS_URL=keyring_jwks_url)


@pytest.fixture(scope="session")
def orders(
    stack: TestStack, products: ServiceProcess, payments: ServiceProcess, keyring_jwks_url: str, logdir: Path
) -> Iterator[ServiceProcess]:
    """An orders instance of these tests' own (own database, the settings above), whatever other test
    modules started: the checks below count every row of its database."""
    env = {**stack.env_for("orders"), "JWKS_URL": keyring_jwks_url, **ORDERS_ENV}
    proc = ServiceProcess("orders", env, logdir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def admin(keyring: KeyRing) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(keyring, uuid.uuid4(), roles=('customer', 'admin'))}"}


@pytest.fixture
def buyer(keyring: KeyRing) -> Callable[[], Buyer]:
    return lambda: make_buyer(keyring)


@pytest.fixture
def make_product(products: ServiceProcess, admin: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """A fresh product with the given stock (unique sku)."""

    def make(stock: int = 10, price_cents: int = 1250, currency: str = "EUR") -> dict[str, Any]:
        body = {
            "sku": f"T-{uuid.uuid4().hex[:12]}",
            "name": "Orders test product",
            "category": "tests",
            "price_cents": price_cents,
            "currency": currency,
        }
        r = httpx.post(f"{products.url}/api/v1/products", json=body, headers=admin)
        assert r.status_code == 201, r.text
        product: dict[str, Any] = r.json()
        r = httpx.put(f"{products.url}/api/v1/products/{product['id']}/stock", json={"quantity": stock}, headers=admin)
        assert r.status_code == 200, r.text
        return product

    return make
