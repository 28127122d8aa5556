"""Internal routes (``/internal/v1``): reservations for orders, the change feed for search.

Callers authenticate with a service token; each route names its catalog API (``internal_api``), whose
caller list is the route's allow-list: search cannot reserve stock and orders cannot read the feed (403).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from services.kit.auth import internal_api
from services.kit.deps import PoolDep
from services.kit.errors import problem_responses
from services.products import store
from services.products.contract import (
    ChangePage,
    OutOfStock,
    ProductNotFound,
    Reservation,
    ReservationConflict,
    ReservationNotFound,
    ReservationRequest,
    WrongReservationState,
)

router = APIRouter(prefix="/internal/v1", tags=["internal"])

ReservationsCaller = Annotated[str, internal_api("reservations")]
ChangesCaller = Annotated[str, internal_api("changes")]

_AUTH = problem_responses(401, 403)


@router.post(
    "/reservations",
    status_code=201,
    response_model=Reservation,
    responses={
        200: {"model": Reservation, "description": "Replay of an earlier reservation"},
        **_AUTH,
        **problem_responses(400, ProductNotFound, OutOfStock, ReservationConflict, 422),
    },
    summary="Reserve stock for an order: all lines or none, idempotent per order id",
)
async def create_reservation(
    body: ReservationRequest, response: Response, caller: ReservationsCaller, pool: PoolDep
) -> dict[str, Any]:
    reservation, created = await store.reserve(pool, body, caller)
    if not created:
        response.status_code = 200
    return reservation


@router.get(
    "/reservations/{order_id}",
    response_model=Reservation,
    responses={**_AUTH, **problem_responses(ReservationNotFound, 422)},
    summary="A reservation and its state",
)
async def read_reservation(order_id: uuid.UUID, caller: ReservationsCaller, pool: PoolDep) -> dict[str, Any]:
    return await store.get_reservation(pool, order_id)


_TRANSITION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    **problem_responses(ReservationNotFound, WrongReservationState, 422),
}


@router.post(
    "/reservations/{order_id}/commit",
    response_model=Reservation,
    responses=_TRANSITION_RESPONSES,
    summary="reserved -> committed: the stock leaves (idempotent)",
)
async def commit_reservation(order_id: uuid.UUID, caller: ReservationsCaller, pool: PoolDep) -> dict[str, Any]:
    return await store.transition(pool, order_id, "commit")


@router.post(
    "/reservations/{order_id}/release",
    response_model=Reservation,
    responses=_TRANSITION_RESPONSES,
    summary="reserved -> released: the stock is available again (idempotent)",
)
async def release_reservation(order_id: uuid.UUID, caller: ReservationsCaller, pool: PoolDep) -> dict[str, Any]:
    return await store.transition(pool, order_id, "release")


@router.post(
    "/reservations/{order_id}/return",
    response_model=Reservation,
    responses=_TRANSITION_RESPONSES,
    summary="committed -> returned: the stock is back on hand (idempotent)",
)
async def return_reservation(order_id: uuid.UUID, caller: ReservationsCaller, pool: PoolDep) -> dict[str, Any]:
    return await store.transition(pool, order_id, "return")


@router.get(
    "/changes",
    response_model=ChangePage,
    responses={**_AUTH, **problem_responses(422)},
    summary="The product change feed, in commit order",
)
async def list_changes(
    caller: ChangesCaller,
    pool: PoolDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> dict[str, Any]:
    return await store.changes(pool, after, limit)
