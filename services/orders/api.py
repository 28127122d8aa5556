"""Public orders routes: place (the saga), list, read, cancel (owner or admin), ship (admin)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.kit.auth import AdminUser, CurrentUser, Principal
from services.kit.deps import PoolDep
from services.kit.errors import problem_responses
from services.kit.http import ServiceCallError
from services.kit.idempotency import IdempotencyKey, Stored, request_hash, require_key, respond
from services.orders import store
from services.orders.deps import SagaDep, SettingsDep
from services.orders.errors import CancelDeferred, OrderNotFound, OrderShipped, WrongOrderState
from services.orders.models import Order, OrderPage, OrderRequest
from services.orders.saga import Outcome, shielded
from services.orders.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])


def _request_hash(settings: Settings, body: OrderRequest) -> str:
    """The hash key is derived from this service's provisioned private key, so no extra secret is needed."""
    secret = settings.service_private_key.get_secret_value() if settings.service_private_key else ""
    key = hashlib.sha256(b"orders-idempotency\n" + secret.encode()).digest()
    return request_hash(key, "place-order", body.model_dump(mode="json"))


async def _visible(pool: asyncpg.Pool, order_id: uuid.UUID, user: Principal) -> Order:
    """The order if the caller owns it or is an admin; 404 otherwise (never reveal another's order)."""
    found = await store.load(pool, order_id)
    if found is None or (found[1] != user.user_id and not user.is_admin):
        raise OrderNotFound
    return found[0]


@router.post(
    "",
    status_code=201,
    response_model=Order,
    summary="Place an order: reserve, charge, commit, confirm (201 only once confirmed)",
    responses=problem_responses(400, 401, 402, 409, 422, 503),
)
async def place_order(
    body: OrderRequest,
    user: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
    saga: SagaDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    key = require_key(idempotency_key, " (a fresh UUID per order you mean to place)")
    claimed = await store.claim(pool, user.user_id, key, _request_hash(settings, body), body.items)
    if isinstance(claimed, Stored):
        return respond(claimed.status_code, claimed.body, replayed=True)
    outcome: Outcome = await shielded(saga.place(claimed, user.user_id, body.items, body.payment.card))
    return respond(outcome.status_code, outcome.body)


@router.get("", response_model=OrderPage, summary="Your orders, newest first", responses=problem_responses(401, 422))
async def list_orders(
    user: CurrentUser,
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> OrderPage:
    orders, next_cursor = await store.list_for_user(pool, user.user_id, limit, cursor)
    return OrderPage(items=orders, next_cursor=next_cursor)


@router.get(
    "/{order_id}",
    response_model=Order,
    summary="One order (owner or admin; anyone else 404)",
    responses=problem_responses(401, 404, 422),
)
async def get_order(order_id: uuid.UUID, user: CurrentUser, pool: PoolDep) -> Order:
    return await _visible(pool, order_id, user)


@router.post(
    "/{order_id}/cancel",
    response_model=Order,
    summary="Cancel a confirmed order: full refund and the stock returned (409 once shipped)",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def cancel_order(order_id: uuid.UUID, user: CurrentUser, pool: PoolDep, saga: SagaDep) -> Order:
    order = await _visible(pool, order_id, user)
    if order.status == "confirmed":
        await store.transition(pool, order_id, "confirmed", "cancelling")
        order = await _visible(pool, order_id, user)
    if order.status == "cancelling":
        assert order.payment_id is not None
        try:
            await shielded(saga.finish_cancel(order_id, order.payment_id))
        except ServiceCallError as exc:
            log.warning(
                "cancel deferred", extra={"event": "cancel_deferred", "order_id": str(order_id), "why": str(exc)}
            )
            raise CancelDeferred(order_id) from None
        order = await _visible(pool, order_id, user)
    if order.status == "cancelled":
        return order
    if order.status == "shipped":
        raise OrderShipped
    raise WrongOrderState("cancelled", order.status)


@router.post(
    "/{order_id}/ship",
    response_model=Order,
    summary="Mark a confirmed order shipped (admin)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def ship_order(order_id: uuid.UUID, admin: AdminUser, pool: PoolDep) -> Order:
    order = await _visible(pool, order_id, admin)
    if order.status == "confirmed":
        await store.transition(pool, order_id, "confirmed", "shipped")
        order = await _visible(pool, order_id, admin)
    if order.status == "shipped":
        log.info("order shipped", extra={"event": "order_shipped", "order_id": str(order_id)})
        return order
    raise WrongOrderState("shipped", order.status)
