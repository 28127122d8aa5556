"""Payments routes: internal charges, refunds and lookups (callers: orders) and the public read."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from services.kit.auth import CurrentUser, internal_api
from services.kit.cards import Card, fingerprint
from services.kit.deps import PoolDep
from services.kit.errors import Problem, problem_body, problem_responses
from services.kit.idempotency import IdempotencyKey, Stored, request_hash, require_key, respond
from services.payments import idempotency
from services.payments.deps import SettingsDep
from services.payments.idempotency import Claim
from services.payments.processor import decide
from services.payments.settings import Settings

log = logging.getLogger(__name__)

PAYMENTS_TOTAL = Counter("payments_total", "Charges and refunds by outcome", ["outcome"])

router = APIRouter()

# Each internal route's allow-list is its catalog API (services/catalog.py): orders only, never the gateway.
ChargesCaller = Annotated[str, internal_api("charges")]
RefundsCaller = Annotated[str, internal_api("refunds")]
PaymentReadsCaller = Annotated[str, internal_api("payment-reads")]

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
# strict: JSON true or "100" is not an amount (lax mode would read them as 1 and 100).
Cents = Annotated[int, Field(strict=True, gt=0, le=100_000_000_000)]


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    order_id: uuid.UUID
    user_id: uuid.UUID
    amount_cents: Cents
    currency: Currency
    card: Card


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_cents: Cents


class CardOut(BaseModel):
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class PublicPayment(BaseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    status: Literal["captured", "declined"]
    amount_cents: int
    refunded_cents: int
    currency: str
    card: CardOut
    created_at: datetime


class Payment(PublicPayment):
    user_id: uuid.UUID
    decline_reason: Literal["card_declined", "insufficient_funds"] | None = None


class PaymentList(BaseModel):
    items: list[Payment]


class Refund(BaseModel):
    id: uuid.UUID
    payment_id: uuid.UUID
    amount_cents: int
    created_at: datetime


def _payment(row: asyncpg.Record) -> Payment:
    return Payment(
        id=row["id"], order_id=row["order_id"], user_id=row["user_id"], status=row["status"],
        decline_reason=row["decline_reason"], amount_cents=row["amount_cents"],
        refunded_cents=row["refunded_cents"], currency=row["currency"],
        card=CardOut(brand=row["card_brand"], last4=row["card_last4"], exp_month=row["card_exp_month"],
                     exp_year=row["card_exp_year"]),
        created_at=row["created_at"],
    )


_TITLES = {"payment-declined": "Payment declined", "refund-exceeds-capture": "Refund exceeds capture",
           "payment-not-captured": "Payment not captured"}


def _problem(request: Request, settings: Settings, status: int, detail: str, kind: str, **ext: Any) -> dict[str, Any]:
    return problem_body(settings.problem_base_uri, status, detail, request.url.path, kind=kind,
                        title=_TITLES.get(kind), **ext)



async def _claim(pool: asyncpg.Pool, settings: Settings, caller: str, key: str, operation: str,
                 body: dict[str, Any]) -> Claim | Stored:
    req_hash = request_hash(settings.card_fingerprint_key.get_secret_value().encode(), operation, body)
    return await idempotency.claim(pool, caller, key, req_hash, settings.idempotency_stale_s)


@router.post(
    "/internal/v1/charges", status_code=201, response_model=Payment, tags=["internal"],
    summary="Charge a card (idempotent per Idempotency-Key and caller)",
    responses=problem_responses(400, 401, 402, 409, 422),
)
async def create_charge(request: Request, body: ChargeRequest, caller: ChargesCaller, pool: PoolDep,
                        settings: SettingsDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
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
                payment_id, body.order_id, body.user_id, "declined" if reason else "captured", reason,
                body.amount_cents, body.currency, card.brand, card.last4, card.exp_month, card.exp_year,
                fingerprint(settings.card_fingerprint_key.get_secret_value(), card.number),
            )
            assert row is not None
            if reason is None:
                txn = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO ledger_transactions (id, payment_id, kind) VALUES ($1, $2, 'capture')",
                    txn, payment_id)
                await conn.execute(
                    """INSERT INTO ledger_entries (transaction_id, payment_id, account, amount_cents, currency)
                       VALUES ($1, $2, 'customer_funds', -$3::bigint, $4),
                              ($1, $2, 'merchant_revenue', $3::bigint, $4)""",
                    txn, payment_id, body.amount_cents, body.currency)
                status, out = 201, _payment(row).model_dump(mode="json")
            else:
                status = 402
                out = _problem(request, settings, 402, "The card was declined.", "payment-declined",
                               payment_id=str(payment_id), reason=reason)
            await idempotency.complete(conn, claimed, status, out)
    except BaseException:
        await idempotency.release(pool, claimed)
        raise
    outcome = "captured" if reason is None else "declined"
    PAYMENTS_TOTAL.labels(outcome).inc()
    log.info("charge " + outcome, extra={"event": f"charge_{outcome}", "order_id": str(body.order_id),
                                         "payment_id": str(payment_id), "amount_cents": body.amount_cents,
                                         "decline_reason": reason})
    return respond(status, out)


@router.post(
    "/internal/v1/payments/{payment_id}/refunds", status_code=201, response_model=Refund, tags=["internal"],
    summary="Refund part or all of a capture (idempotent per Idempotency-Key and caller)",
    responses=problem_responses(400, 401, 404, 409, 422),
)
async def create_refund(request: Request, payment_id: uuid.UUID, body: RefundRequest, caller: RefundsCaller,
                        pool: PoolDep, settings: SettingsDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
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
                payment_id, body.amount_cents)
            if payment is None:
                current = await conn.fetchrow(
                    "SELECT status, amount_cents, refunded_cents FROM payments WHERE id = $1", payment_id)
                if current is None:
                    status, out = 404, _problem(request, settings, 404, "No such payment.", "not-found")
                elif current["status"] != "captured":
                    status, out = 409, _problem(request, settings, 409, "A declined payment cannot be refunded.",
                                                "payment-not-captured")
                else:
                    refundable = int(current["amount_cents"] - current["refunded_cents"])
                    status, out = 409, _problem(
                        request, settings, 409, "The refund would exceed what was captured and not yet refunded.",
                        "refund-exceeds-capture", refundable_cents=refundable)
            else:
                row = await conn.fetchrow(
                    "INSERT INTO refunds (id, payment_id, amount_cents) VALUES ($1, $2, $3) RETURNING *",
                    refund_id, payment_id, body.amount_cents)
                assert row is not None
                txn = uuid.uuid4()
                await conn.execute(
                    """INSERT INTO ledger_transactions (id, payment_id, refund_id, kind)
                       VALUES ($1, $2, $3, 'refund')""", txn, payment_id, refund_id)
                await conn.execute(
                    """INSERT INTO ledger_entries (transaction_id, payment_id, account, amount_cents, currency)
                       VALUES ($1, $2, 'refunds', -$3::bigint, $4),
                              ($1, $2, 'customer_funds', $3::bigint, $4)""",
                    txn, payment_id, body.amount_cents, payment["currency"])
                status = 201
                out = Refund(id=row["id"], payment_id=row["payment_id"], amount_cents=row["amount_cents"],
                             created_at=row["created_at"]).model_dump(mode="json")
            await idempotency.complete(conn, claimed, status, out)
    except BaseException:
        await idempotency.release(pool, claimed)
        raise
    if status == 201 and payment is not None:
        PAYMENTS_TOTAL.labels("refunded").inc()
        log.info("refund made", extra={"event": "refund_created", "order_id": str(payment["order_id"]),
                                       "payment_id": str(payment_id), "amount_cents": body.amount_cents})
    return respond(status, out)


@router.get(
    "/internal/v1/payments", response_model=PaymentList, tags=["internal"],
    summary="Payments of an order, oldest first (the orders recovery loop uses it)",
    responses=problem_responses(401, 422),
)
async def list_order_payments(caller: PaymentReadsCaller, pool: PoolDep,
                              order_id: uuid.UUID = Query()) -> PaymentList:
    rows = await pool.fetch(
        "SELECT * FROM payments WHERE order_id = $1 ORDER BY created_at, id", order_id)
    return PaymentList(items=[_payment(r) for r in rows])


@router.get(
    "/api/v1/payments/{payment_id}", response_model=PublicPayment, tags=["payments"],
    summary="A payment, for its owner or an admin (anyone else: 404)",
    responses=problem_responses(401, 404, 422),
)
async def get_payment(payment_id: uuid.UUID, user: CurrentUser, pool: PoolDep) -> PublicPayment:
    row = await pool.fetchrow("SELECT * FROM payments WHERE id = $1", payment_id)
    if row is None or (row["user_id"] != user.user_id and not user.is_admin):
        raise Problem(404, "No such payment.")
    return PublicPayment.model_validate(_payment(row).model_dump(exclude={"user_id", "decline_reason"}))
