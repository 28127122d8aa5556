"""Internal routes (``/internal/v1``, callers: orders): charges, refunds and an order's payments.

Each route's allow-list is its catalog API (services/catalog.py): orders only, never the gateway. The bodies
and errors are the contract's (``services/payments/contract.py``).
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from services.kit.auth import internal_api
from services.kit.cards import fingerprint
from services.kit.deps import PoolDep
from services.kit.errors import Problem, problem_responses
from services.kit.idempotency import IdempotencyKey, Stored, request_hash, require_key, respond
from services.payments import idempotency
from services.payments.contract import (
    CardOut,
    ChargeRequest,
    Declined,
    Payment,
    PaymentList,
    PaymentNotCaptured,
    PaymentNotFound,
    Refund,
    RefundExceedsCapture,
    RefundRequest,
)
from services.payments.deps import SettingsDep
from services.payments.idempotency import Claim
from services.payments.processor import decide
from services.payments.settings import Settings

log = logging.getLogger(__name__)

PAYMENTS_TOTAL = Counter("payments_total", "Charges and refunds by outcome", ["outcome"])

router = APIRouter()

ChargesCaller = Annotated[str, internal_api("charges")]
RefundsCaller = Annotated[str, internal_api("refunds")]
PaymentReadsCaller = Annotated[str, internal_api("payment-reads")]


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


async def _claim(
    pool: asyncpg.Pool, settings: Settings, caller: str, key: str, operation: str, body: dict[str, Any]
) -> Claim | Stored:
    req_hash = request_hash(settings.card_fingerprint_key.get_secret_value().encode(), operation, body)
    return await idempotency.claim(pool, caller, key, req_hash, settings.idempotency_stale_s)


@router.post(
    "/internal/v1/charges",
    status_code=201,
    response_model=Payment,
    tags=["internal"],
    summary="Charge a card (idempotent per Idempotency-Key and caller)",
    responses=problem_responses(400, 401, Declined, 409, 422),
)
async def create_charge(
    request: Request,
    body: ChargeRequest,
    caller: ChargesCaller,
    pool: PoolDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    key = require_key(idempotency_key)
    claimed = await _claim(pool, settings, caller, key, "charge", body.model_dump(mode="json"))
    if isinstance(claimed, Stored):
        return respond(claimed.status_code, claimed.body, replayed=True)
    card = body.card
    reason = decide(card.number)
    payment_id = uuid.uuid4()
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO payments (id, order_id, user_id, status, decline_reason, amount_cents, currency,
                                         card_brand, card_last4, card_exp_month, card_exp_year, card_fingerprint)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *""",
                payment_id,
                body.order_id,
                body.user_id,
                "declined" if reason else "captured",
                reason,
                body.amount_cents,
                body.currency,
                card.brand,
                card.last4,
                card.exp_month,
                card.exp_year,
                fingerprint(settings.card_fingerprint_key.get_secret_value(), card.number),
            )
            assert row is not None
            if reason is None:
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
                    body.amount_cents,
                    body.currency,
                )
                status, out = 201, payment_of(row).model_dump(mode="json")
            else:
                status = 402
                out = Declined(payment_id, reason).body(settings.problem_base_uri, request.url.path)
            await idempotency.complete(conn, claimed, status, out)
    except BaseException:
        await idempotency.release(pool, claimed)
        raise
    outcome = "captured" if reason is None else "declined"
    PAYMENTS_TOTAL.labels(outcome).inc()
    log.info(
        "charge " + outcome,
        extra={
            "event": f"charge_{outcome}",
            "order_id": str(body.order_id),
            "payment_id": str(payment_id),
            "amount_cents": body.amount_cents,
            "decline_reason": reason,
        },
    )
    return respond(status, out)


@router.post(
    "/internal/v1/payments/{payment_id}/refunds",
    status_code=201,
    response_model=Refund,
    tags=["internal"],
    summary="Refund part or all of a capture (idempotent per Idempotency-Key and caller)",
    responses=problem_responses(400, 401, PaymentNotFound, PaymentNotCaptured, RefundExceedsCapture, 422),
)
async def create_refund(
    request: Request,
    payment_id: uuid.UUID,
    body: RefundRequest,
    caller: RefundsCaller,
    pool: PoolDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    key = require_key(idempotency_key)
    claimed = await _claim(pool, settings, caller, key, f"refund {payment_id}", body.model_dump(mode="json"))
    if isinstance(claimed, Stored):
        return respond(claimed.status_code, claimed.body, replayed=True)
    refund_id = uuid.uuid4()
    try:
        async with pool.acquire() as conn, conn.transaction():
            # Conditional UPDATE: concurrent refunds can never add up past the capture (and the CHECK
            # refunded_cents <= amount_cents backs it in the schema).
            payment = await conn.fetchrow(
                """UPDATE payments SET refunded_cents = refunded_cents + $2
                    WHERE id = $1 AND status = 'captured' AND refunded_cents + $2 <= amount_cents
                    RETURNING id, order_id, currency""",
                payment_id,
                body.amount_cents,
            )
            if payment is None:
                current = await conn.fetchrow(
                    "SELECT status, amount_cents, refunded_cents FROM payments WHERE id = $1", payment_id
                )
                refused: Problem
                if current is None:
                    refused = PaymentNotFound("No such payment.")
                elif current["status"] != "captured":
                    refused = PaymentNotCaptured("A declined payment cannot be refunded.")
                else:
                    refused = RefundExceedsCapture(int(current["amount_cents"] - current["refunded_cents"]))
                status, out = refused.status, refused.body(settings.problem_base_uri, request.url.path)
            else:
                row = await conn.fetchrow(
                    "INSERT INTO refunds (id, payment_id, amount_cents) VALUES ($1, $2, $3) RETURNING *",
                    refund_id,
                    payment_id,
                    body.amount_cents,
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
                    body.amount_cents,
                    payment["currency"],
                )
                status = 201
                out = Refund(
                    id=row["id"],
                    payment_id=row["payment_id"],
                    amount_cents=row["amount_cents"],
                    created_at=row["created_at"],
                ).model_dump(mode="json")
            await idempotency.complete(conn, claimed, status, out)
    except BaseException:
        await idempotency.release(pool, claimed)
        raise
    if status == 201 and payment is not None:
        PAYMENTS_TOTAL.labels("refunded").inc()
        log.info(
            "refund made",
            extra={
                "event": "refund_created",
                "order_id": str(payment["order_id"]),
                "payment_id": str(payment_id),
                "amount_cents": body.amount_cents,
            },
        )
    return respond(status, out)


@router.get(
    "/internal/v1/payments",
    response_model=PaymentList,
    tags=["internal"],
    summary="Payments of an order, oldest first (the orders recovery loop uses it)",
    responses=problem_responses(401, 422),
)
async def list_order_payments(caller: PaymentReadsCaller, pool: PoolDep, order_id: uuid.UUID = Query()) -> PaymentList:
    rows = await pool.fetch("SELECT * FROM payments WHERE order_id = $1 ORDER BY created_at, id", order_id)
    return PaymentList(items=[payment_of(r) for r in rows])
