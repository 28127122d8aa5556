"""The recovery loop: finishes or compensates orders a crash left half-way.

Runs in every replica as a background task; ``pg_try_advisory_lock`` lets one replica at a time work.
It cannot charge (the card is never stored), so for an order untouched for ``RECOVERY_STUCK_AFTER_S``:

- ``pending`` / ``reserved`` and no capture (payments is asked) -> release the stock, ``failed``;
  a declined charge -> release, ``payment_failed``; a capture -> ``paid`` and on as below;
- ``paid`` -> commit the stock and confirm (or, when the reservation is gone, refund + ``failed``);
- ``cancelling`` -> refund, return the stock, ``cancelled``;
- ``failed`` with ``needs_settle`` (settle pass, once, ``RECOVERY_SETTLE_AFTER_S`` after it failed):
  refund any capture and release any reservation that reached a peer after the saga gave up on it.

Each step is idempotent, so a crash of the loop itself is harmless: the next round repeats it. The
outcome is also stored as the final response of the order's Idempotency-Key (or the key is dropped when
the order failed, so the client may retry).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from fastapi import FastAPI

from services.kit.deps import pool_of, settings_of, state_of
from services.kit.http import ServiceCallError
from services.orders import store
from services.orders.saga import Saga
from services.orders.settings import Settings
from services.payments.contract import Declined
from services.products.contract import ReservationNotFound

log = logging.getLogger(__name__)

_LOCK_KEY = 0x0D3E5  # "orders recovery", one per database


async def recover_order(saga: Saga, row: store.OrderRow) -> None:
    oid = str(row.id)
    log.info("recovering order", extra={"event": "recovery_order", "order_id": oid, "order_status": row.status})
    if row.status == "cancelling":
        assert row.payment_id is not None
        await saga.finish_cancel(row.id, row.payment_id)
        return
    if row.status == "paid":
        assert row.payment_id is not None
        await saga.finish_paid(row.id, "paid", row.payment_id)
        return
    payments = await saga.payments.of_order(row.id)
    captured = [p for p in payments if p.status == "captured"]
    declined = [p for p in payments if p.status == "declined"]
    if captured:
        payment = captured[0]
        if row.status == "pending" and not await _adopt_reservation(saga, row.id):
            await saga.fail(row.id, "pending", "recovered: capture without reservation", payment.id)
            return
        await saga.finish_paid(row.id, "reserved", payment.id)
    elif declined and row.status == "reserved":
        await saga.release(row.id)
        decline = Declined.of(declined[0])
        await saga.end(
            row.id,
            "reserved",
            "payment_failed",
            402,
            saga.declined(row.id, decline),
            payment_id=decline.payment_id,
            failure_reason="payment declined",
        )
    else:
        await saga.fail(row.id, row.status, "recovered: interrupted before any capture")


async def _adopt_reservation(saga: Saga, order_id: uuid.UUID) -> bool:
    """A pending order whose reservation exists at products: take its price snapshot (pending -> reserved)."""
    try:
        reservation = await saga.products.reservation(order_id)
    except ReservationNotFound:
        return False
    items = reservation.items
    if reservation.status != "reserved" or len({i.currency for i in items}) != 1:
        return False
    total = sum(i.unit_price_cents * i.quantity for i in items)
    return await store.record_reservation(
        saga.pool, order_id, total, items[0].currency, [i.model_dump() for i in items]
    )


async def settle(saga: Saga, order_id: uuid.UUID) -> None:
    """A failed order, checked once more: no capture stands, no stock stays held."""
    for p in await saga.payments.of_order(order_id):
        if p.status == "captured" and p.refunded_cents < p.amount_cents:
            await saga.refund_rest(order_id, p.id)
    try:
        reservation = await saga.products.reservation(order_id)
    except ReservationNotFound:
        pass
    else:
        if reservation.status in ("reserved", "committed"):
            await saga.release(order_id)
    await saga.pool.execute("UPDATE orders SET needs_settle = false WHERE id = $1 AND status = 'failed'", order_id)
    log.info("failed order settled", extra={"event": "order_settled", "order_id": str(order_id)})


async def recover_once(saga: Saga, settings: Settings) -> int:
    """One pass; returns how many orders it looked at."""
    rows = await saga.pool.fetch(
        """SELECT id, user_id, status, payment_id, total_cents, currency FROM orders
            WHERE status IN ('pending', 'reserved', 'paid', 'cancelling')
              AND updated_at < now() - make_interval(secs => $1)
            ORDER BY updated_at LIMIT $2""",
        settings.recovery_stuck_after_s,
        settings.recovery_batch,
    )
    for r in rows:
        try:
            await recover_order(saga, store.OrderRow(**dict(r)))
        except ServiceCallError as exc:
            log.warning(
                "recovery step deferred",
                extra={"event": "recovery_deferred", "order_id": str(r["id"]), "why": str(exc)},
            )
    failed = await saga.pool.fetch(
        """SELECT id FROM orders WHERE status = 'failed' AND needs_settle
              AND updated_at < now() - make_interval(secs => $1) ORDER BY updated_at LIMIT $2""",
        settings.recovery_settle_after_s,
        settings.recovery_batch,
    )
    for r in failed:
        try:
            await settle(saga, r["id"])
        except ServiceCallError as exc:
            log.warning(
                "settle deferred", extra={"event": "settle_deferred", "order_id": str(r["id"]), "why": str(exc)}
            )
    return len(rows) + len(failed)


async def run(app: FastAPI) -> None:
    settings, saga, pool = settings_of(app, Settings), state_of(app, "saga", Saga), pool_of(app)
    while True:
        await asyncio.sleep(settings.recovery_interval_s)
        try:
            async with pool.acquire() as conn:
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
                    continue  # another replica is on it
                try:
                    await recover_once(saga, settings)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database or a peer may be restarting: next round
            log.warning("recovery round failed", extra={"event": "recovery_failed", "error_type": type(exc).__name__})
