"""Request and response bodies of the orders API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.kit.cards import Card

OrderStatus = Literal[
    "pending",
    "reserved",
    "paid",
    "confirmed",
    "shipped",
    "cancelling",
    "cancelled",
    "rejected",
    "payment_failed",
    "failed",
]


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: uuid.UUID
    quantity: Annotated[int, Field(strict=True, ge=1, le=1000)]  # strict: true is not 1, "2" is not 2


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    card: Card


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    items: Annotated[list[OrderLine], Field(min_length=1, max_length=100)]
    payment: PaymentIn

    @field_validator("items")
    @classmethod
    def _unique_products(cls, items: list[OrderLine]) -> list[OrderLine]:
        if len({i.product_id for i in items}) != len(items):
            raise ValueError("each product may appear once; add up the quantities instead")
        return items


class OrderItem(BaseModel):
    product_id: uuid.UUID
    name: str | None = Field(description="snapshot at order time; null until stock was reserved")
    quantity: int
    unit_price_cents: int | None = Field(description="snapshot at order time; null until stock was reserved")


class Order(BaseModel):
    id: uuid.UUID
    status: OrderStatus
    items: list[OrderItem]
    total_cents: int | None
    currency: str | None
    payment_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    items: list[Order]
    next_cursor: str | None
