"""The payments public response models: what a payment's owner reads (``GET /api/v1/payments/{id}``).

The internal contract's :class:`services.payments.contract.Payment` extends :class:`PublicPayment` with the
fields only orders sees, so the public view is always a subset of the internal one.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class CardOut(BaseModel):
    brand: str
    last4: str
    exp_month: int
    exp_year: int


# What the payment's owner sees (the public read). No docstring: it would enter the public API document.
class PublicPayment(BaseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    status: Literal["captured", "declined"]
    amount_cents: int
    refunded_cents: int
    currency: str
    card: CardOut
    created_at: datetime
