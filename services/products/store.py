"""All SQL of the products service, in one place.

Concurrency rules (why stock can never go negative and reservations cannot deadlock):
- ``products`` carries ``CHECK (stock_reserved >= 0 AND stock_reserved <= stock_on_hand)``: whatever the
  code does, PostgreSQL refuses an oversell.
- Every transaction that changes stock locks the product rows it touches with
  ``SELECT ... ORDER BY id FOR UPDATE`` *before* updating them, so two multi-line reservations naming the
  same products in opposite orders take their locks in the same order and queue instead of deadlocking.
  Transactions on an existing reservation lock its row first (``FOR UPDATE``), then products by id.
- Every catalogue write takes ``pg_advisory_xact_lock`` (held to commit), stamps the row with the time
  of its (post-lock) statement, and appends to
  ``product_changes`` with ``max(seq) + 1`` in the same transaction: seq is gapless and in commit order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from services.kit.pagination import decode_cursor, next_cursor
from services.products import metrics
from services.products.contract import (
    OutOfStock,
    ProductNotFound,
    ReservationConflict,
    ReservationNotFound,
    ReservationRequest,
    Shortage,
    WrongReservationState,
)
from services.products.errors import DuplicateSku, StockBelowReserved
from services.products.models import ProductCreate

Conn = asyncpg.Connection | PoolConnectionProxy

PRODUCT_COLUMNS = (
    "id, sku, name, description, category, price_cents, currency, stock_on_hand, "
    "stock_on_hand - stock_reserved AS stock_available, created_at, updated_at"
)

# The hot read: one indexed point select, prepared once per pooled connection (asyncpg's statement cache).
GET_PRODUCT_SQL = f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1 AND deleted_at IS NULL"  # noqa: S608

# The feed's view of a product: the fields search indexes, with an RFC 3339 UTC timestamp.
_FEED_JSON = (
    "jsonb_build_object('id', p.id, 'sku', p.sku, 'name', p.name, 'description', p.description, "
    "'category', p.category, 'price_cents', p.price_cents, 'currency', p.currency, "
    """'updated_at', to_char(p.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))"""
)
_NEXT_SEQ = "(SELECT coalesce(max(seq), 0) + 1 FROM product_changes)"

# Columns a PATCH may set (a whitelist: field names are interpolated into SQL, values never are).
PATCHABLE = ("sku", "name", "description", "category", "price_cents", "currency")


def product_dict(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row.items())


def _not_found(product_id: uuid.UUID) -> ProductNotFound:
    return ProductNotFound(f"Product {product_id} does not exist.", [product_id])


# --- catalogue ----------------------------------------------------------------------------------------

# The category index holds only live rows in category order: PostgreSQL counts from it (an index-only scan
# once the visibility map is set) without sorting.
CATEGORIES_SQL = (
    "SELECT category AS name, count(*)::int AS products FROM products WHERE deleted_at IS NULL "
    "GROUP BY category ORDER BY category LIMIT 500"
)


async def list_categories(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r.items()) for r in await pool.fetch(CATEGORIES_SQL)]


async def list_products(
    pool: asyncpg.Pool,
    *,
    limit: int,
    cursor: str | None,
    category: str | None,
    min_price_cents: int | None,
    max_price_cents: int | None,
) -> tuple[list[dict[str, Any]], str | None]:
    where = ["deleted_at IS NULL"]
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if cursor is not None:
        created_at, product_id = decode_cursor(cursor)
        where.append(f"(created_at, id) > ({arg(created_at)}, {arg(product_id)})")
    if category is not None:
        where.append(f"category = {arg(category)}")
    if min_price_cents is not None:
        where.append(f"price_cents >= {arg(min_price_cents)}")
    if max_price_cents is not None:
        where.append(f"price_cents <= {arg(max_price_cents)}")
    sql = (
        f"SELECT {PRODUCT_COLUMNS} FROM products WHERE {' AND '.join(where)} "  # noqa: S608
        f"ORDER BY created_at, id LIMIT {arg(limit + 1)}"
    )
    rows = await pool.fetch(sql, *args)
    return [product_dict(r) for r in rows[:limit]], next_cursor(rows, limit)


async def _feed_lock(conn: Conn, key: int) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", key)


async def create_product(pool: asyncpg.Pool, body: ProductCreate, lock_key: int) -> dict[str, Any]:
    sql = f"""
        WITH p AS (
            INSERT INTO products (id, sku, name, description, category, price_cents, currency, created_at,
                                  updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, statement_timestamp(), statement_timestamp()) RETURNING *
        ), c AS (
            INSERT INTO product_changes (seq, product_id, op, product)
            SELECT {_NEXT_SEQ}, p.id, 'upsert', {_FEED_JSON} FROM p
        )
        SELECT {PRODUCT_COLUMNS} FROM p"""  # noqa: S608
    async with pool.acquire() as conn, conn.transaction():
        await _feed_lock(conn, lock_key)
        try:
            row = await conn.fetchrow(
                sql, uuid.uuid4(), body.sku, body.name, body.description, body.category, body.price_cents, body.currency
            )
        except asyncpg.UniqueViolationError:
            raise DuplicateSku(body.sku) from None
    assert row is not None
    return product_dict(row)


async def get_product(pool: asyncpg.Pool, product_id: uuid.UUID) -> dict[str, Any]:
    row = await pool.fetchrow(GET_PRODUCT_SQL, product_id)
    if row is None:
        raise _not_found(product_id)
    return product_dict(row)


async def update_product(
    pool: asyncpg.Pool, product_id: uuid.UUID, changes: dict[str, Any], lock_key: int
) -> dict[str, Any]:
    if not changes:
        return await get_product(pool, product_id)
    assert set(changes) <= set(PATCHABLE)
    names = [n for n in PATCHABLE if n in changes]
    sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
    sql = f"""
        WITH p AS (
            UPDATE products SET {sets}, updated_at = statement_timestamp()
            WHERE id = $1 AND deleted_at IS NULL RETURNING *
        ), c AS (
            INSERT INTO product_changes (seq, product_id, op, product)
            SELECT {_NEXT_SEQ}, p.id, 'upsert', {_FEED_JSON} FROM p
        )
        SELECT {PRODUCT_COLUMNS} FROM p"""  # noqa: S608
    async with pool.acquire() as conn, conn.transaction():
        await _feed_lock(conn, lock_key)
        try:
            row = await conn.fetchrow(sql, product_id, *(changes[n] for n in names))
        except asyncpg.UniqueViolationError:
            raise DuplicateSku(str(changes.get("sku"))) from None
    if row is None:
        raise _not_found(product_id)
    return product_dict(row)


async def delete_product(pool: asyncpg.Pool, product_id: uuid.UUID, lock_key: int) -> None:
    """Soft delete: the row stays (reservations and order history refer to it), it leaves every read,
    new reservations of it get 404, and the feed says ``delete``."""
    sql = f"""
        WITH p AS (
            UPDATE products SET deleted_at = statement_timestamp(), updated_at = statement_timestamp()
            WHERE id = $1 AND deleted_at IS NULL RETURNING id
        ), c AS (
            INSERT INTO product_changes (seq, product_id, op, product)
            SELECT {_NEXT_SEQ}, p.id, 'delete', NULL FROM p
        )
        SELECT id FROM p"""  # noqa: S608
    async with pool.acquire() as conn, conn.transaction():
        await _feed_lock(conn, lock_key)
        deleted = await conn.fetchval(sql, product_id)
    if deleted is None:
        raise _not_found(product_id)


async def set_stock(pool: asyncpg.Pool, product_id: uuid.UUID, quantity: int) -> dict[str, Any]:
    row = await pool.fetchrow(
        f"UPDATE products SET stock_on_hand = $2 WHERE id = $1 AND deleted_at IS NULL "  # noqa: S608
        f"AND stock_reserved <= $2 RETURNING {PRODUCT_COLUMNS}",
        product_id,
        quantity,
    )
    if row is not None:
        return product_dict(row)
    reserved = await pool.fetchval(
        "SELECT stock_reserved FROM products WHERE id = $1 AND deleted_at IS NULL", product_id
    )
    if reserved is None:
        raise _not_found(product_id)
    raise StockBelowReserved(reserved)


# --- reservations -------------------------------------------------------------------------------------


async def _load_reservation(conn: Conn | asyncpg.Pool, order_id: uuid.UUID) -> dict[str, Any] | None:
    status = await conn.fetchval("SELECT status FROM reservations WHERE order_id = $1", order_id)
    if status is None:
        return None
    items = await conn.fetch(
        "SELECT product_id, quantity, name, unit_price_cents, currency FROM reservation_items "
        "WHERE order_id = $1 ORDER BY line_no",
        order_id,
    )
    return {"order_id": order_id, "status": status, "items": [dict(r.items()) for r in items]}


async def get_reservation(pool: asyncpg.Pool, order_id: uuid.UUID) -> dict[str, Any]:
    found = await _load_reservation(pool, order_id)
    if found is None:
        raise _reservation_not_found(order_id)
    return found


def _reservation_not_found(order_id: uuid.UUID) -> ReservationNotFound:
    return ReservationNotFound(f"No reservation for order {order_id}.")


async def _lock_products(conn: Conn, ids: Sequence[uuid.UUID], *, live_only: bool) -> list[asyncpg.Record]:
    live = " AND deleted_at IS NULL" if live_only else ""
    return list(
        await conn.fetch(
            "SELECT id, name, price_cents, currency, stock_on_hand - stock_reserved AS available "  # noqa: S608
            f"FROM products WHERE id = ANY($1::uuid[]){live} ORDER BY id FOR UPDATE",
            list(ids),
        )
    )


async def reserve(pool: asyncpg.Pool, request: ReservationRequest, caller: str) -> tuple[dict[str, Any], bool]:
    """Reserve every line or none. Returns (reservation, created); a replay returns created=False."""
    wanted = {line.product_id: line.quantity for line in request.items}
    async with pool.acquire() as conn, conn.transaction():
        # A concurrent insert of the same order id makes this wait for that transaction, then do nothing.
        inserted = await conn.fetchval(
            "INSERT INTO reservations (order_id, status, caller) VALUES ($1, 'reserved', $2) "
            "ON CONFLICT (order_id) DO NOTHING RETURNING true",
            request.order_id,
            caller,
        )
        if not inserted:
            existing = await _load_reservation(conn, request.order_id)
            assert existing is not None
            if {i["product_id"]: i["quantity"] for i in existing["items"]} != wanted:
                raise ReservationConflict(f"Order {request.order_id} already has a reservation with other items.")
            metrics.count("replayed")
            return existing, False
        rows = await _lock_products(conn, list(wanted), live_only=True)
        by_id = {r["id"]: r for r in rows}
        missing = [pid for pid in wanted if pid not in by_id]
        if missing:
            raise ProductNotFound("Some products do not exist.", missing)
        shortages = [
            Shortage(product_id=pid, requested=qty, available=by_id[pid]["available"])
            for pid, qty in wanted.items()
            if by_id[pid]["available"] < qty
        ]
        if shortages:
            metrics.count("out_of_stock")
            raise OutOfStock(shortages)
        ids = list(wanted)
        qtys = [wanted[pid] for pid in ids]
        await conn.execute(
            "UPDATE products p SET stock_reserved = p.stock_reserved + v.q "
            "FROM unnest($1::uuid[], $2::int[]) AS v(id, q) WHERE p.id = v.id",
            ids,
            qtys,
        )
        items = [
            {
                "product_id": pid,
                "quantity": wanted[pid],
                "name": by_id[pid]["name"],
                "unit_price_cents": by_id[pid]["price_cents"],
                "currency": by_id[pid]["currency"],
            }
            for pid in ids
        ]
        await conn.execute(
            "INSERT INTO reservation_items (order_id, line_no, product_id, quantity, name, unit_price_cents, "
            "currency) SELECT $1, v.n - 1, v.id, v.q, v.name, v.price, v.cur FROM unnest($2::uuid[], $3::int[], "
            "$4::text[], $5::bigint[], $6::text[]) WITH ORDINALITY AS v(id, q, name, price, cur, n)",
            request.order_id,
            ids,
            qtys,
            [i["name"] for i in items],
            [i["unit_price_cents"] for i in items],
            [i["currency"] for i in items],
        )
    metrics.count("reserved")
    return {"order_id": request.order_id, "status": "reserved", "items": items}, True


# transition -> (from, to, stock change SQL using v.q)
_TRANSITIONS: dict[str, tuple[str, str, str]] = {
    "commit": (
        "reserved",
        "committed",
        "stock_on_hand = p.stock_on_hand - v.q, stock_reserved = p.stock_reserved - v.q",
    ),
    "release": ("reserved", "released", "stock_reserved = p.stock_reserved - v.q"),
    "return": ("committed", "returned", "stock_on_hand = p.stock_on_hand + v.q"),
}


async def transition(pool: asyncpg.Pool, order_id: uuid.UUID, action: str) -> dict[str, Any]:
    """commit / release / return: idempotent when already in the target state, 409 from any other."""
    source, target, stock_sql = _TRANSITIONS[action]
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval("SELECT status FROM reservations WHERE order_id = $1 FOR UPDATE", order_id)
        if status is None:
            raise _reservation_not_found(order_id)
        if status != target:
            if status != source:
                raise WrongReservationState(f"Cannot {action} a reservation that is {status}.", status)
            lines = await conn.fetch("SELECT product_id, quantity FROM reservation_items WHERE order_id = $1", order_id)
            ids = [r["product_id"] for r in lines]
            await _lock_products(conn, ids, live_only=False)
            await conn.execute(
                f"UPDATE products p SET {stock_sql} FROM unnest($1::uuid[], $2::int[]) AS v(id, q) "  # noqa: S608
                "WHERE p.id = v.id",
                ids,
                [r["quantity"] for r in lines],
            )
            await conn.execute(
                "UPDATE reservations SET status = $2, updated_at = now() WHERE order_id = $1", order_id, target
            )
            metrics.count(target)  # type: ignore[arg-type]
        found = await _load_reservation(conn, order_id)
    assert found is not None
    return found


# --- change feed --------------------------------------------------------------------------------------


async def changes(pool: asyncpg.Pool, after: int, limit: int) -> dict[str, Any]:
    rows = await pool.fetch(
        "SELECT seq, product_id, op, product::text AS product FROM product_changes "
        "WHERE seq > $1 ORDER BY seq LIMIT $2",
        after,
        limit,
    )
    items = [
        {
            "seq": r["seq"],
            "product_id": r["product_id"],
            "op": r["op"],
            "product": orjson.loads(r["product"]) if r["product"] is not None else None,
        }
        for r in rows
    ]
    return {"items": items, "next_after": items[-1]["seq"] if items else after}
