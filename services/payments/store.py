"""All SQL of the payments service (except the idempotency keys: ``idempotency.py``), in one place.

A charge and a refund each write their payment row and their balanced ledger transaction (two entries
that sum to zero) in the caller's transaction, the one that also stores the idempotent response, so the
effect and the answer commit together. The store raises the contract's named errors; each is rendered
as its problem body by whoever answers, never as a status chosen here.
"""

from __future__ import annotations

import uuid

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.payments.contract import (
    ChargeRequest,
    Declined,
    DeclineReason,
    Payment,
    PaymentNotCaptured,
    PaymentNotFound,
    Refund,
    RefundExceedsCapture,
)
from services.payments.models import CardOut

Conn = asyncpg.Connection | PoolConnectionProxy


def payment_of(row: asyncpg.Record) -> Payment:
    return Payment(
        id=row["id"],
        order_id=row["order_id"],
        user_id=row["user_id"],
        status=row["status"],
        decline_reason=row["decline_reason"],
        amount_cents=row["amount_cents"],
        refunded_cents=row["refunded_cents"],
        currency=row["currency"],
        card=CardOut(
            brand=row["card_brand"],
            last4=row["card_last4"],
            exp_month=row["card_exp_month"],
            exp_year=row["card_exp_year"],
        ),
        created_at=row["created_at"],
    )


async def get_payment(pool: asyncpg.Pool, payment_id: uuid.UUID) -> Payment | None:
    row = await pool.fetchrow("SELECT * FROM payments WHERE id = $1", payment_id)
    return None if row is None else payment_of(row)


async def payments_of_order(pool: asyncpg.Pool, order_id: uuid.UUID) -> list[Payment]:
    """The order's payments, oldest first."""
    rows = await pool.fetch("SELECT * FROM payments WHERE order_id = $1 ORDER BY created_at, id", order_id)
    return [payment_of(r) for r in rows]


async def record_charge(
    conn: Conn,
    payment_id: uuid.UUID,
    charge: ChargeRequest,
    reason: DeclineReason | None,
    card_fingerprint: str,
) -> Payment:
    """Store the processor's decision on a charge: a captured payment and its capture in the ledger, or
    a declined payment, stored too, and then :class:`Declined` (the transaction still commits it)."""
    card = charge.card
    row = await conn.fetchrow(
        """INSERT INTO payments (id, order_id, user_id, status, decline_reason, amount_cents, currency,
                                 card_brand, card_last4, card_exp_month, card_exp_year, card_fingerprint)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *""",
        payment_id,
        charge.order_id,
        charge.user_id,
        "declined" if reason else "captured",
        reason,
        charge.amount_cents,
        charge.currency,
        card.brand,
        card.last4,
        card.exp_month,
        card.exp_year,
        card_fingerprint,
    )
    assert row is not None
    if reason is not None:
        raise Declined(payment_id, reason)
    txn = uuid.uuid4()
    await conn.execute(
        "INSERT INTO ledger_transactions (id, payment_id, kind) VALUES ($1, $2, 'capture')", txn, payment_id
    )
    await conn.execute(
        """INSERT INTO ledger_entries (transaction_id, payment_id, account, amount_cents, currency)
           VALUES ($1, $2, 'customer_funds', -$3::bigint, $4),
                  ($1, $2, 'merchant_revenue', $3::bigint, $4)""",
        txn,
        payment_id,
        charge.amount_cents,
        charge.currency,
    )
    return payment_of(row)


async def record_refund(
    conn: Conn, refund_id: uuid.UUID, payment_id: uuid.UUID, amount_cents: int
) -> tuple[Refund, uuid.UUID]:
    """The refund and the order of its payment. Raises PaymentNotFound, PaymentNotCaptured or
    RefundExceedsCapture having changed nothing."""
    # Conditional UPDATE: concurrent refunds can never add up past the capture (and the CHECK
    # refunded_cents <= amount_cents backs it in the schema).
    payment = await conn.fetchrow(
        """UPDATE payments SET refunded_cents = refunded_cents + $2
            WHERE id = $1 AND status = 'captured' AND refunded_cents + $2 <= amount_cents
            RETURNING id, order_id, currency""",
        payment_id,
        amount_cents,
    )
    if payment is None:
        current = await conn.fetchrow(
            "SELECT status, amount_cents, refunded_cents FROM payments WHERE id = $1", payment_id
        )
        if current is None:
            raise PaymentNotFound("No such payment.")
        if current["status"] != "captured":
            raise PaymentNotCaptured("A declined payment cannot be refunded.")
        raise RefundExceedsCapture(int(current["amount_cents"] - current["refunded_cents"]))
    row = await conn.fetchrow(
        "INSERT INTO refunds (id, payment_id, amount_cents) VALUES ($1, $2, $3) RETURNING *",
        refund_id,
        payment_id,
        amount_cents,
    )
    assert row is not None
    txn = uuid.uuid4()
    await conn.execute(
        """INSERT INTO ledger_transactions (id, payment_id, refund_id, kind)
           VALUES ($1, $2, $3, 'refund')""",
        txn,
        payment_id,
        refund_id,
    )
    await conn.execute(
        """INSERT INTO ledger_entries (transaction_id, payment_id, account, amount_cents, currency)
           VALUES ($1, $2, 'refunds', -$3::bigint, $4),
                  ($1, $2, 'customer_funds', $3::bigint, $4)""",
        txn,
        payment_id,
        amount_cents,
        payment["currency"],
    )
    refund = Refund(
        id=row["id"], payment_id=row["payment_id"], amount_cents=row["amount_cents"], created_at=row["created_at"]
    )
    return refund, payment["order_id"]
