"""Faults: a peer down, hanging or killed mid-saga. Whatever happens, every order ends confirmed or
compensated by itself: no stock held and no capture standing for an order that is not confirmed.

These tests use their own orders instance with short timeouts and a fast recovery loop (own database),
so the shared instance keeps the generous timeouts the concurrency tests need.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.runner.postgres import PostgresServer
from tests.services.orders.support import Buyer, db, order_body, place, stock, unfinished_problems, wait_until
from tests.services.payments.support import ledger_problems
from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack

TIMEOUT_S = 1.0
FAST_ENV = {
    "PRODUCTS_TIMEOUT_S": str(TIMEOUT_S),
    "PAYMENTS_TIMEOUT_S": str(TIMEOUT_S),
    "RECOVERY_INTERVAL_S": "0.5",
    "RECOVERY_STUCK_AFTER_S": "6.5",
    "RECOVERY_SETTLE_AFTER_S": "2",
}


@pytest.fixture(scope="module")
def fast_orders(
    stack: TestStack, products: ServiceProcess, payments: ServiceProcess, keyring_jwks_url: str, logdir: Path
) -> Iterator[ServiceProcess]:
    env = {**stack.env_for("orders"), "JWKS_URL": keyring_jwks_url, **FAST_ENV}
    proc = ServiceProcess("orders", env, logdir).start()
    yield proc
    proc.stop()


def settled(pg: PostgresServer, orders: ServiceProcess, products: ServiceProcess, payments: ServiceProcess) -> bool:
    return (
        unfinished_problems(pg, orders, products, payments) == []
        and pg.psql("SELECT count(*) FROM orders WHERE needs_settle", db(orders)) == "0"
    )


def test_payments_down_answers_503_fast_and_releases_the_stock(
    fast_orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    pg: PostgresServer,
    make_product: Callable[..., dict[str, Any]],
    buyer: Callable[[], Buyer],
) -> None:
    """A dead payments service must not hold stock or keep a buyer waiting; the same key can be retried."""
    p = make_product(stock=5)
    me = buyer()
    body, key = order_body((p["id"], 2)), str(uuid.uuid4())
    payments.stop()
    try:
        started = time.monotonic()
        r = place(fast_orders, me, body, key)
        elapsed = time.monotonic() - started
        assert r.status_code == 503, r.text
        problem = r.json()
        assert problem["type"].endswith("/upstream-unavailable")
        assert problem["order_status"] == "failed"
        assert elapsed < TIMEOUT_S + 1.0, elapsed
        assert stock(products, p["id"]) == (5, 5)
        got = httpx.get(f"{fast_orders.url}/api/v1/orders/{problem['order_id']}", headers=me.headers).json()
        assert got["status"] == "failed"
    finally:
        payments.start()
    retried = place(fast_orders, me, body, key)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] != problem["order_id"]
    assert stock(products, p["id"]) == (3, 3)
    assert wait_until(lambda: settled(pg, fast_orders, products, payments), timeout=20)
    assert ledger_problems(pg, db(payments)) == []


def test_a_hanging_payments_service_ends_consistent_after_recovery(
    fast_orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    pg: PostgresServer,
    make_product: Callable[..., dict[str, Any]],
    buyer: Callable[[], Buyer],
) -> None:
    """Payments frozen (SIGSTOP) mid-charge: the outcome is unknown, so the order waits; once payments
    thaws and captures, recovery confirms the order and the client's key replays the 201."""
    p = make_product(stock=5)
    me = buyer()
    body, key = order_body((p["id"], 1)), str(uuid.uuid4())
    assert payments.proc is not None
    payments.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = place(fast_orders, me, body, key)
        assert time.monotonic() - started < 3 * TIMEOUT_S + 1.0
        assert r.status_code == 503, r.text
        order_id = r.json()["order_id"]
        in_flight = place(fast_orders, me, body, key)
        assert in_flight.status_code == 409
        assert in_flight.json()["type"].endswith("/idempotency-in-flight")
    finally:
        payments.proc.send_signal(signal.SIGCONT)
    assert wait_until(lambda: settled(pg, fast_orders, products, payments), timeout=30)
    final = httpx.get(f"{fast_orders.url}/api/v1/orders/{order_id}", headers=me.headers).json()
    assert final["status"] in ("confirmed", "failed")
    replay = place(fast_orders, me, body, key)
    if final["status"] == "confirmed":
        assert replay.status_code == 201
        assert replay.json()["id"] == order_id
        assert stock(products, p["id"]) == (4, 4)
    else:
        assert stock(products, p["id"]) == ((4, 4) if replay.status_code == 201 else (5, 5))
    assert ledger_problems(pg, db(payments)) == []


def test_products_killed_mid_saga_every_order_ends_confirmed_or_compensated(
    fast_orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    pg: PostgresServer,
    make_product: Callable[..., dict[str, Any]],
    buyer: Callable[[], Buyer],
) -> None:
    """SIGKILL products while 40 orders are in flight, start it again: after recovery nothing is held."""
    p = make_product(stock=100, price_cents=700)
    buyers = [buyer() for _ in range(10)]

    async def storm() -> list[httpx.Response | BaseException]:
        async with httpx.AsyncClient(base_url=fast_orders.url, timeout=30) as client:

            async def one(i: int) -> httpx.Response:
                await asyncio.sleep(i * 0.01)
                return await client.post(
                    "/api/v1/orders",
                    json=order_body((p["id"], 1)),
                    headers={**buyers[i % 10].headers, "Idempotency-Key": str(uuid.uuid4())},
                )

            async def killer() -> None:
                await asyncio.sleep(0.15)
                products.kill()

            results = await asyncio.gather(*(one(i) for i in range(40)), killer(), return_exceptions=True)
            return [r for r in results if r is not None]

    results = asyncio.run(storm())
    products.start()
    statuses = [r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in results]
    assert 503 in statuses, statuses  # the kill did land mid-saga
    assert set(statuses) <= {201, 503}, statuses
    assert wait_until(lambda: settled(pg, fast_orders, products, payments), timeout=40), unfinished_problems(
        pg, fast_orders, products, payments
    )
    confirmed = int(
        pg.psql(
            f"SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id "  # noqa: S608
            f"WHERE o.status = 'confirmed' AND i.product_id = '{uuid.UUID(p['id'])}'",
            db(fast_orders),
        )
    )
    assert confirmed >= statuses.count(201)
    assert stock(products, p["id"]) == (100 - confirmed, 100 - confirmed)
    assert ledger_problems(pg, db(payments)) == []


def test_a_cancel_interrupted_by_payments_being_down_completes_by_itself(
    fast_orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    pg: PostgresServer,
    make_product: Callable[..., dict[str, Any]],
    buyer: Callable[[], Buyer],
) -> None:
    """A cancel that cannot refund now answers 503 and stays 'cancelling' (ship can no longer win);
    recovery refunds, returns the stock and ends it 'cancelled'."""
    p = make_product(stock=5)
    me = buyer()
    order = place(fast_orders, me, order_body((p["id"], 2))).json()
    assert stock(products, p["id"]) == (3, 3)
    payments.stop()
    try:
        r = httpx.post(f"{fast_orders.url}/api/v1/orders/{order['id']}/cancel", headers=me.headers)
        assert r.status_code == 503, r.text
        assert r.json()["order_status"] == "cancelling"
    finally:
        payments.start()

    def cancelled() -> bool:
        got = httpx.get(f"{fast_orders.url}/api/v1/orders/{order['id']}", headers=me.headers).json()
        return bool(got["status"] == "cancelled")

    assert wait_until(cancelled, timeout=30)
    assert stock(products, p["id"]) == (5, 5)
    refunded = pg.psql(
        f"SELECT refunded_cents FROM payments WHERE id = '{uuid.UUID(order['payment_id'])}'",  # noqa: S608
        db(payments),
    )
    assert int(refunded) == order["total_cents"]
    assert ledger_problems(pg, db(payments)) == []


def test_orders_itself_killed_mid_saga_recovers_on_restart_and_keys_resolve(
    fast_orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    pg: PostgresServer,
    make_product: Callable[..., dict[str, Any]],
    buyer: Callable[[], Buyer],
) -> None:
    """SIGKILL the orders process with sagas in flight, start it again: the recovery loop finishes or
    compensates every order, and a client retrying its Idempotency-Key gets a final answer (never a
    second purchase: a confirmed order replays, a failed one's key is free again)."""
    p = make_product(stock=100, price_cents=300)
    buyers = [buyer() for _ in range(10)]
    keys = [str(uuid.uuid4()) for _ in range(30)]

    async def storm() -> list[httpx.Response | BaseException]:
        async with httpx.AsyncClient(base_url=fast_orders.url, timeout=30) as client:

            async def one(i: int) -> httpx.Response:
                await asyncio.sleep(i * 0.01)
                return await client.post(
                    "/api/v1/orders",
                    json=order_body((p["id"], 1)),
                    headers={**buyers[i % 10].headers, "Idempotency-Key": keys[i]},
                )

            async def killer() -> None:
                await asyncio.sleep(0.15)
                fast_orders.kill()

            results = await asyncio.gather(*(one(i) for i in range(30)), killer(), return_exceptions=True)
            return [r for r in results[:30] if r is not None]

    results = asyncio.run(storm())
    fast_orders.start()
    lost = [i for i, r in enumerate(results) if not isinstance(r, httpx.Response)]
    assert lost, "the kill did not land mid-saga"
    assert all(r.status_code == 201 for r in results if isinstance(r, httpx.Response))
    assert wait_until(lambda: settled(pg, fast_orders, products, payments), timeout=40), unfinished_problems(
        pg, fast_orders, products, payments
    )
    for i in lost:
        retry = place(fast_orders, buyers[i % 10], order_body((p["id"], 1)), keys[i])
        assert retry.status_code == 201, retry.text
    assert wait_until(lambda: settled(pg, fast_orders, products, payments), timeout=20)
    confirmed = int(
        pg.psql(
            "SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id "  # noqa: S608
            f"WHERE o.status = 'confirmed' AND i.product_id = '{uuid.UUID(p['id'])}'",
            db(fast_orders),
        )
    )
    assert confirmed == 30
    assert stock(products, p["id"]) == (70, 70)
    assert ledger_problems(pg, db(payments)) == []
