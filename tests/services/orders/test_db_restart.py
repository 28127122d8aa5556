"""A restarted PostgreSQL: the services recover without a restart of their own, and orders caught
mid-saga by the outage end confirmed or compensated.

This module runs its own PostgreSQL server and its own products, payments and orders processes, so
stopping the database does not disturb any other test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.deploy.keyring import KeyRing
from services.runner.postgres import PostgresServer
from tests.services.orders.support import make_buyer, order_body, place, stock, unfinished_problems, wait_until
from tests.services.payments.support import database_of, ledger_problems, mint_token
from tests.support.procs import ServiceProcess, free_port
from tests.support.stack import TestStack

FAST_ENV = {
    "PRODUCTS_TIMEOUT_S": "1",
    "PAYMENTS_TIMEOUT_S": "1",
    "RECOVERY_INTERVAL_S": "0.5",
    "RECOVERY_STUCK_AFTER_S": "6.5",
    "RECOVERY_SETTLE_AFTER_S": "2",
}


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PostgresServer]:
    server = PostgresServer(port=free_port())
    server.init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def own_stack(own_pg: PostgresServer, keyring: KeyRing, keyring_jwks_url: str, logdir: Path) -> Iterator[TestStack]:
    s = TestStack(own_pg, keyring, logdir)  # the session's log folder: the card-data grep reads these too
    try:
        s.start("products", JWKS_URL=keyring_jwks_url)
        s.start("payments", JWKS_URL=keyring_jwks_url)
        s.start("orders", JWKS_URL=keyring_jwks_url, **FAST_ENV)
        yield s
    finally:
        s.stop_all()


def _product(products: ServiceProcess, keyring: KeyRing, stock_qty: int) -> dict[str, Any]:
    admin = {"authorization": f"Bearer {mint_token(keyring, uuid.uuid4(), roles=('admin',))}"}
    body = {
        "sku": f"R-{uuid.uuid4().hex[:12]}",
        "name": "Restart product",
        "category": "tests",
        "price_cents": 500,
        "currency": "EUR",
    }
    product: dict[str, Any] = httpx.post(f"{products.url}/api/v1/products", json=body, headers=admin).json()
    r = httpx.put(f"{products.url}/api/v1/products/{product['id']}/stock", json={"quantity": stock_qty}, headers=admin)
    assert r.status_code == 200, r.text
    return product


def test_services_recover_from_a_database_restart_without_restarting(
    own_stack: TestStack, own_pg: PostgresServer, keyring: KeyRing, logdir: Path
) -> None:
    orders, products = own_stack.running["orders"], own_stack.running["products"]
    p = _product(products, keyring, 10)
    me = make_buyer(keyring)
    assert place(orders, me, order_body((p["id"], 1))).status_code == 201
    own_pg.stop()
    try:
        r = place(orders, me, order_body((p["id"], 1)), timeout=15)
        assert r.status_code == 503, r.text  # a clear status while the database is away, never a hang
        assert httpx.get(f"{orders.url}/readyz").status_code == 503
    finally:
        own_pg.start()

    def works() -> bool:
        return place(orders, me, order_body((p["id"], 1))).status_code == 201

    assert wait_until(works, timeout=20, interval=0.5)
    for proc in own_stack.running.values():
        assert proc.proc is not None
        assert proc.proc.poll() is None  # the same processes: nobody was restarted
        assert httpx.get(f"{proc.url}/readyz").status_code == 200


def test_orders_caught_by_a_database_restart_end_confirmed_or_compensated(
    own_stack: TestStack, own_pg: PostgresServer, keyring: KeyRing
) -> None:
    orders, products, payments = (own_stack.running[n] for n in ("orders", "products", "payments"))
    p = _product(products, keyring, 100)
    buyers = [make_buyer(keyring) for _ in range(10)]

    async def storm() -> list[Any]:
        async with httpx.AsyncClient(base_url=orders.url, timeout=30) as client:

            async def one(i: int) -> httpx.Response:
                await asyncio.sleep(i * 0.01)
                return await client.post(
                    "/api/v1/orders",
                    json=order_body((p["id"], 1)),
                    headers={**buyers[i % 10].headers, "Idempotency-Key": str(uuid.uuid4())},
                )

            async def outage() -> None:
                await asyncio.sleep(0.15)
                await asyncio.to_thread(own_pg.stop, "immediate")
                await asyncio.sleep(1.0)
                await asyncio.to_thread(own_pg.start)

            return list(await asyncio.gather(*(one(i) for i in range(40)), outage(), return_exceptions=True))

    results = [r for r in asyncio.run(storm()) if r is not None]
    statuses = [r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in results]
    assert set(statuses) <= {201, 503}, statuses
    assert 503 in statuses, statuses  # the outage did land mid-saga

    def settled() -> bool:
        try:
            return (
                unfinished_problems(own_pg, orders, products, payments) == []
                and own_pg.psql(
                    "SELECT count(*) FROM orders WHERE needs_settle", database_of(orders.env["DATABASE_URL"])
                )
                == "0"
            )
        except RuntimeError:
            return False

    started = time.monotonic()
    assert wait_until(settled, timeout=40), unfinished_problems(own_pg, orders, products, payments)
    assert time.monotonic() - started < 40
    confirmed = int(
        own_pg.psql(
            "SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id "  # noqa: S608
            f"WHERE o.status = 'confirmed' AND i.product_id = '{uuid.UUID(p['id'])}'",
            database_of(orders.env["DATABASE_URL"]),
        )
    )
    assert confirmed >= statuses.count(201)
    assert stock(products, p["id"]) == (100 - confirmed, 100 - confirmed)
    assert ledger_problems(own_pg, database_of(payments.env["DATABASE_URL"])) == []
