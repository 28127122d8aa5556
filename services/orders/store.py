"""SQL of the orders service: orders and lines, conditional transitions, idempotency keys, listing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client import Counter

from services.kit import idempotency
from services.kit.idempotency import Stored
from services.kit.pagination import decode_cursor, next_cursor
from services.orders.models import Order, OrderItem, OrderLine

ORDERS_TOTAL = Counter("orders_total", "Orders reaching a state", ["status"])

Conn = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
# An order's key is named by the order it created (the saga and recovery know the order, not the key).
KEYS = idempotency.KeyTable(handle=("order_id",))


@dataclass(frozen=True)
class OrderRow:
    id: uuid.UUID
    user_id: uuid.UUID
    status: str
    payment_id: uuid.UUID | None
    total_cents: int | None
    currency: str | None


async def claim(
    pool: asyncpg.Pool, user_id: uuid.UUID, key: str, req_hash: str, lines: list[OrderLine]
) -> uuid.UUID | Stored:
    """Create the pending order together with its idempotency key, or find the key's first request.

    Returns the new order's id (this request owns the key), or the stored final response (a replay).
    Raises ``IdempotencyConflict`` (different body) or ``IdempotencyInFlight``.
    """

    async def insert() -> uuid.UUID | None:
        order_id = uuid.uuid4()
        # One statement: the key first; the order and its lines only if the key was free. (PostgreSQL runs
        # the foreign-key check of the key row at the end of the statement, after the order exists.)
        inserted = await pool.fetchval(
            """WITH k AS (INSERT INTO idempotency_keys (user_id, key, request_hash, order_id)
                          VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING order_id),
                    o AS (INSERT INTO orders (id, user_id, status) SELECT order_id, $1, 'pending' FROM k
                          RETURNING id),
                    i AS (INSERT INTO order_items (order_id, line, product_id, quantity)
                          SELECT o.id, t.n - 1, t.product_id, t.quantity
                            FROM o, unnest($5::uuid[], $6::int[]) WITH ORDINALITY AS t (product_id, quantity, n))
               SELECT count(*) FROM k""",
            user_id,
            key,
            req_hash,
            order_id,
            [line.product_id for line in lines],
            [line.quantity for line in lines],
        )
        if not inserted:
            return None
        ORDERS_TOTAL.labels("pending").inc()
        return order_id

    async def find() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "SELECT request_hash, status_code, response_body FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            user_id,
            key,
        )

    return await idempotency.claim(insert, find, req_hash, what="An order")


async def transition(conn: Conn, order_id: uuid.UUID, expected: str, new: str, **fields: Any) -> bool:
    """Move ``expected -> new`` (setting ``fields``) only if the order is still in ``expected``."""
    sets = ["status = $3"] + [f"{name} = ${i}" for i, name in enumerate(fields, start=4)]
    done = await conn.fetchval(
        f"UPDATE orders SET {', '.join(sets)} WHERE id = $1 AND status = $2 RETURNING true",  # noqa: S608
        order_id,
        expected,
        new,
        *fields.values(),
    )
    if done:
        ORDERS_TOTAL.labels(new).inc()
    return bool(done)


async def record_reservation(
    conn: Conn, order_id: uuid.UUID, total_cents: int, currency: str, items: list[dict[str, Any]]
) -> bool:
    """pending -> reserved with the price snapshot of the reservation, in one statement."""
    moved = await conn.fetchval(
        """WITH o AS (UPDATE orders SET status = 'reserved', total_cents = $2, currency = $3
                       WHERE id = $1 AND status = 'pending' RETURNING id),
                i AS (UPDATE order_items it SET name = t.name, unit_price_cents = t.price
                        FROM o, unnest($4::uuid[], $5::text[], $6::bigint[]) AS t (product_id, name, price)
                       WHERE it.order_id = o.id AND it.product_id = t.product_id)
           SELECT count(*) FROM o""",
        order_id,
        total_cents,
        currency,
        [uuid.UUID(str(i["product_id"])) for i in items],
        [str(i["name"]) for i in items],
        [int(i["unit_price_cents"]) for i in items],
    )
    if moved:
        ORDERS_TOTAL.labels("reserved").inc()
    return bool(moved)


async def finalize(conn: Conn, order_id: uuid.UUID, status_code: int, body: dict[str, Any]) -> None:
    """Store the final response of the request that created ``order_id`` (replays return it)."""
    await KEYS.complete(conn, (order_id,), status_code, body)


async def forget_key(conn: Conn, order_id: uuid.UUID) -> None:
    """Drop the unfinished key of a failed order: the client may retry it (a new order)."""
    await KEYS.release(conn, (order_id,))


async def row(conn: Conn, order_id: uuid.UUID) -> OrderRow | None:
    r = await conn.fetchrow(
        "SELECT id, user_id, status, payment_id, total_cents, currency FROM orders WHERE id = $1", order_id
    )
    return OrderRow(**dict(r)) if r else None


def _order(r: asyncpg.Record, items: list[asyncpg.Record]) -> Order:
    return Order(
        id=r["id"],
        status=r["status"],
        total_cents=r["total_cents"],
        currency=r["currency"],
        payment_id=r["payment_id"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        items=[
            OrderItem(
                product_id=i["product_id"],
                name=i["name"],
                quantity=i["quantity"],
                unit_price_cents=i["unit_price_cents"],
            )
            for i in items
        ],
    )


async def load(conn: Conn, order_id: uuid.UUID) -> tuple[Order, uuid.UUID] | None:
    """The order and its owner."""
    r = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    if r is None:
        return None
    items = await conn.fetch("SELECT * FROM order_items WHERE order_id = $1 ORDER BY line", order_id)
    return _order(r, items), r["user_id"]


# The page and its lines in one statement (one round trip, not two): each order's lines as an array of
# order_items rows, which asyncpg decodes into records (asyncpg 0.32 docs/usage.rst, "Type Conversion":
# composite types and arrays of them, record -> asyncpg.Record).
_PAGE = """SELECT o.*, ARRAY(SELECT i FROM order_items i WHERE i.order_id = o.id ORDER BY i.line) AS lines
           FROM orders o WHERE o.user_id = $1{after}
           ORDER BY o.created_at DESC, o.id DESC LIMIT ${limit}"""
_FIRST_PAGE = _PAGE.format(after="", limit=2)
_NEXT_PAGE = _PAGE.format(after=" AND (o.created_at, o.id) < ($2, $3)", limit=4)


async def list_for_user(
    pool: asyncpg.Pool, user_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Order], str | None]:
    """The user's orders, newest first (keyset pagination on created_at, id)."""
    if cursor:
        t, last = decode_cursor(cursor)
        rows = await pool.fetch(_NEXT_PAGE, user_id, t, last, limit + 1)
    else:
        rows = await pool.fetch(_FIRST_PAGE, user_id, limit + 1)
    return [_order(r, r["lines"]) for r in rows[:limit]], next_cursor(rows, limit)


async def prune_keys(pool: asyncpg.Pool, retention_s: float) -> None:
    """Only finished keys: an unfinished one belongs to an order recovery has not settled yet."""
    await KEYS.prune(pool, retention_s, finished_only=True)
