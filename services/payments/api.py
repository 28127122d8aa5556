"""Public payments routes: a payment, read by its owner or an admin."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from services.kit.auth import CurrentUser
from services.kit.errors import problem_responses
from services.payments.contract import PaymentNotFound, PublicPayment
from services.payments.internal import payment_of

router = APIRouter()


@router.get(
    "/api/v1/payments/{payment_id}", response_model=PublicPayment, tags=["payments"],
    summary="A payment, for its owner or an admin (anyone else: 404)",
    responses=problem_responses(401, 404, 422),
)
async def get_payment(request: Request, payment_id: uuid.UUID, user: CurrentUser) -> PublicPayment:
    row = await request.app.state.pool.fetchrow("SELECT * FROM payments WHERE id = $1", payment_id)
    if row is None or (row["user_id"] != user.user_id and not user.is_admin):
        raise PaymentNotFound("No such payment.")
    return PublicPayment.model_validate(payment_of(row).model_dump(exclude={"user_id", "decline_reason"}))
