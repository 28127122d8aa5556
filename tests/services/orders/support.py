"""Helpers for the orders tests: buyers with tokens, placing orders, stock and consistency checks."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from services.deploy.keyring import KeyRing
from services.runner.postgres import PostgresServer
from tests.services.payments.support import card, database_of, mint_token
from tests.support.procs import ServiceProcess


@dataclass(frozen=True)
class Buyer:
    user_id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def make_buyer(keyring: KeyRing) -> Buyer:
    user_id = uuid.uuid4()
    return Buyer(user_id, mint_token(keyring, user_id, lifetime=3600))


def order_body(*lines: tuple[str, int], number: str = "4242 4242 4242 4242") -> dict[str, Any]:
    return {"items": [{"product_id": pid, "quantity": q} for pid, q in lines], "payment": {"card": card(number)}}


def place(
    orders: ServiceProcess, buyer: Buyer, body: dict[str, Any], key: str | None = None, timeout: float = 30.0
) -> httpx.Response:
    headers = {**buyer.headers, "Idempotency-Key": key or str(uuid.uuid4())}
    return httpx.post(f"{orders.url}/api/v1/orders", json=body, headers=headers, timeout=timeout)


def stock(products: ServiceProcess, product_id: str) -> tuple[int, int]:
    """(stock_on_hand, stock_available) of a product."""
    body = httpx.get(f"{products.url}/api/v1/products/{product_id}").json()
    return int(body["stock_on_hand"]), int(body["stock_available"])


def db(proc: ServiceProcess) -> str:
    return database_of(proc.env["DATABASE_URL"])


def unfinished_problems(
    pg: PostgresServer, orders: ServiceProcess, products: ServiceProcess, payments: ServiceProcess
) -> list[str]:
    """The end-state invariant: no order half-way, no stock held and no capture standing for an order
    that is not confirmed (or shipped)."""
    problems = []
    stuck = pg.psql(
        "SELECT id || ' ' || status FROM orders WHERE status IN ('pending','reserved','paid','cancelling')", db(orders)
    )
    if stuck:
        problems.append(f"orders half-way: {stuck}")
    good = set(pg.psql("SELECT id FROM orders WHERE status IN ('confirmed', 'shipped')", db(orders)).split())
    mine = _all_orders(pg, orders)
    held = pg.psql(
        "SELECT order_id || ' ' || status FROM reservations WHERE status IN ('reserved', 'committed')", db(products)
    ).splitlines()
    for line in held:
        order_id, status = line.split()
        if order_id not in good and order_id in mine:
            problems.append(f"stock {status} for order {order_id} that is not confirmed")
    captures = pg.psql(
        "SELECT order_id || ' ' || (amount_cents - refunded_cents) FROM payments "
        "WHERE status = 'captured' AND refunded_cents < amount_cents",
        db(payments),
    ).splitlines()
    for line in captures:
        order_id, _ = line.split()
        if order_id not in good and order_id in mine:
            problems.append(f"capture standing for order {order_id} that is not confirmed")
    return problems


def _all_orders(pg: PostgresServer, orders: ServiceProcess) -> set[str]:
    return set(pg.psql("SELECT id FROM orders", db(orders)).split())


def wait_until(predicate: Any, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
