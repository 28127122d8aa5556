"""Oversell: 200 concurrent buyers for 50 units end with exactly 50 confirmed orders and nothing else."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from services.runner.postgres import PostgresServer
from tests.services.orders.support import Buyer, db, order_body, stock, unfinished_problems
from tests.services.payments.support import ledger_problems
from tests.support.procs import ServiceProcess


def test_200_concurrent_orders_for_50_units_confirm_exactly_50(
    orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    pg: PostgresServer,
    make_product: Callable[..., dict[str, Any]],
    buyer: Callable[[], Buyer],
) -> None:
    """Never oversell, never charge a rejected buyer: the stock ends at 0, captures equal confirmed totals."""
    product = make_product(stock=50, price_cents=1999)
    buyers = [buyer() for _ in range(40)]
    body = order_body((product["id"], 1))

    async def storm() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=orders.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/orders",
                        json=body,
                        headers={**buyers[i % len(buyers)].headers, "Idempotency-Key": str(uuid.uuid4())},
                    )
                    for i in range(200)
                )
            )

    responses = asyncio.run(storm())
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 50, 409: 150}, statuses
    for r in responses:
        if r.status_code == 409:
            assert r.json()["type"].endswith("/out-of-stock")
    assert stock(products, product["id"]) == (0, 0)

    confirmed = [r.json() for r in responses if r.status_code == 201]
    assert all(o["status"] == "confirmed" for o in confirmed)
    ids = ",".join(f"'{uuid.UUID(o['id'])}'" for o in confirmed)  # UUIDs only: safe to inline
    all_ids = ",".join(f"'{uuid.UUID(r.json().get('id') or r.json()['order_id'])}'" for r in responses)
    captured = pg.psql(
        f"SELECT coalesce(sum(amount_cents - refunded_cents), 0) FROM payments "  # noqa: S608
        f"WHERE status = 'captured' AND order_id IN ({all_ids})",
        db(payments),
    )
    assert int(captured) == sum(o["total_cents"] for o in confirmed) == 50 * 1999
    assert pg.psql(f"SELECT count(*) FROM payments WHERE order_id IN ({ids})", db(payments)) == "50"  # noqa: S608
    assert ledger_problems(pg, db(payments)) == []
    assert unfinished_problems(pg, orders, products, payments) == []
