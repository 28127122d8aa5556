"""Public payments routes: a payment, read by its owner or an admin."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.kit.auth import CurrentUser
from services.kit.deps import PoolDep
from services.kit.errors import problem_responses
from services.payments import store
from services.payments.contract import PaymentNotFound
from services.payments.models import PublicPayment

router = APIRouter()


@router.get(
    "/api/v1/payments/{payment_id}",
    response_model=PublicPayment,
    tags=["payments"],
    summary="A payment, for its owner or an admin (anyone else: 404)",
    responses=problem_responses(401, 404, 422),
)
async def get_payment(payment_id: uuid.UUID, user: CurrentUser, pool: PoolDep) -> PublicPayment:
    payment = await store.get_payment(pool, payment_id)
    if payment is None or (payment.user_id != user.user_id and not user.is_admin):
        raise PaymentNotFound("No such payment.")
    return PublicPayment.model_validate(payment.model_dump(exclude={"user_id", "decline_reason"}))
