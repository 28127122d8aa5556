"""Internal routes (``/internal/v1``, callers: orders): charges, refunds and an order's payments.

Each route's allow-list is its catalog API (services/catalog.py): orders only, never the gateway. The bodies
and errors are the contract's (``services/payments/contract.py``), the SQL the store's (``store.py``).
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
from services.kit.errors import problem_responses
from services.kit.idempotency import IdempotencyKey, Stored, request_hash, require_key, respond
from services.payments import idempotency, store
from services.payments.contract import (
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
    reason = decide(body.card.number)
    payment_id = uuid.uuid4()
    out: dict[str, Any]
    try:
        card_fingerprint = fingerprint(settings.card_fingerprint_key.get_secret_value(), body.card.number)
        async with pool.acquire() as conn, conn.transaction():
            try:
                payment = await store.record_charge(conn, payment_id, body, reason, card_fingerprint)
                status, out = 201, payment.model_dump(mode="json")
            except Declined as declined:  # the declined payment is stored: its 402 is the stored answer
                status, out = declined.status, declined.body(settings.problem_base_uri, request.url.path)
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
    order_id: uuid.UUID | None = None
    out: dict[str, Any]
    try:
        async with pool.acquire() as conn, conn.transaction():
            try:
                refund, order_id = await store.record_refund(conn, refund_id, payment_id, body.amount_cents)
                status, out = 201, refund.model_dump(mode="json")
            except (PaymentNotFound, PaymentNotCaptured, RefundExceedsCapture) as refused:
                status, out = refused.status, refused.body(settings.problem_base_uri, request.url.path)
            await idempotency.complete(conn, claimed, status, out)
    except BaseException:
        await idempotency.release(pool, claimed)
        raise
    if order_id is not None:
        PAYMENTS_TOTAL.labels("refunded").inc()
        log.info(
            "refund made",
            extra={
                "event": "refund_created",
                "order_id": str(order_id),
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
    return PaymentList(items=await store.payments_of_order(pool, order_id))
