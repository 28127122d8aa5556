"""The products internal API (``/internal/v1``), said once: its request and response models, its named
errors, and the typed client its callers use (orders: reservations; search: the change feed).

The service declares these models as its routes' ``response_model`` and raises these errors; a caller's
:class:`ProductsClient` reads the same models and turns each problem body back into the same error class, so
the two sides cannot drift apart.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.kit.errors import Conflict, NotFound, ProblemBody
from services.kit.http import ServiceClient

# --- reservations -------------------------------------------------------------------------------------


class ReservationLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: uuid.UUID
    quantity: int = Field(strict=True, ge=1, le=1000)


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: uuid.UUID
    items: list[ReservationLine] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _unique_products(self) -> ReservationRequest:
        ids = [line.product_id for line in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("each product may appear only once in items")
        return self


ReservationStatus = Literal["reserved", "committed", "released", "returned"]


class ReservedLine(BaseModel):
    product_id: uuid.UUID
    quantity: int
    name: str
    unit_price_cents: int
    currency: str


class Reservation(BaseModel):
    order_id: uuid.UUID
    status: ReservationStatus
    items: list[ReservedLine]


# --- change feed --------------------------------------------------------------------------------------


class FeedProduct(BaseModel):
    id: uuid.UUID
    sku: str
    name: str
    description: str
    category: str
    price_cents: int = Field(ge=0)
    currency: str
    updated_at: datetime


class Change(BaseModel):
    seq: int = Field(gt=0)
    product_id: uuid.UUID
    op: Literal["upsert", "delete"]
    product: FeedProduct | None

    @model_validator(mode="after")
    def _upsert_has_product(self) -> Change:
        if self.op == "upsert" and (self.product is None or self.product.id != self.product_id):
            raise ValueError("an upsert carries the product it upserts")
        return self


class ChangePage(BaseModel):
    """A batch in commit order. Validated on arrival too, so a malformed batch is an error the indexer
    retries, never half-applied data."""

    items: list[Change]
    next_after: int = Field(ge=0, description="Pass it back as `after`; equals `after` when nothing is new")

    @model_validator(mode="after")
    def _ordered(self) -> ChangePage:
        seqs = [c.seq for c in self.items]
        if seqs != sorted(set(seqs)):
            raise ValueError("changes must come in strictly increasing seq order")
        if seqs and self.next_after < seqs[-1]:
            raise ValueError("next_after is behind the batch it closes")
        return self


# --- named errors -------------------------------------------------------------------------------------


class ProductNotFound(NotFound):
    """A product named in the request does not exist (or was deleted)."""

    kind = "product-not-found"

    def __init__(self, detail: str, product_ids: list[uuid.UUID]) -> None:
        super().__init__(detail, product_ids=[str(p) for p in product_ids])
        self.product_ids = product_ids

    @classmethod
    def received(cls, body: ProblemBody) -> Self:
        return cls(body.detail, body.member("product_ids", list[uuid.UUID]))


class Shortage(BaseModel):
    product_id: uuid.UUID
    requested: int
    available: int


class OutOfStock(Conflict):
    """Some lines cannot be reserved in full; nothing was reserved."""

    kind = "out-of-stock"

    def __init__(self, shortages: list[Shortage], detail: str = "Not enough stock for some items.") -> None:
        super().__init__(detail, shortages=[s.model_dump(mode="json") for s in shortages])
        self.shortages = shortages

    @classmethod
    def received(cls, body: ProblemBody) -> Self:
        return cls(body.member("shortages", list[Shortage]), body.detail)


class ReservationConflict(Conflict):
    """The order already has a reservation with other lines."""

    kind = "reservation-conflict"


class ReservationNotFound(NotFound):
    kind = "reservation-not-found"


class WrongReservationState(Conflict):
    """The reservation is in a state the transition cannot start from (e.g. committing a released one)."""

    kind = "reservation-state"

    def __init__(self, detail: str, reservation_status: ReservationStatus) -> None:
        super().__init__(detail, reservation_status=reservation_status)
        self.reservation_status = reservation_status

    @classmethod
    def received(cls, body: ProblemBody) -> Self:
        return cls(body.detail, body.member("reservation_status", ReservationStatus))


# --- the client ---------------------------------------------------------------------------------------


class ProductsClient:
    """The products internal API as a caller sees it. Every method raises the named errors it lists,
    :class:`services.kit.http.UnexpectedAnswer` for any other answer, and
    :class:`services.kit.http.ServiceCallError` when products cannot be reached or answers 5xx."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def reserve(self, order_id: uuid.UUID, items: list[ReservationLine]) -> Reservation:
        """All lines or none, idempotent per order id. Raises OutOfStock, ProductNotFound, ReservationConflict."""
        body = ReservationRequest(order_id=order_id, items=items).model_dump(mode="json")
        return await self._client.call(
            "POST",
            "/internal/v1/reservations",
            Reservation,
            json=body,
            errors=(OutOfStock, ProductNotFound, ReservationConflict),
        )

    async def reservation(self, order_id: uuid.UUID) -> Reservation:
        """Raises ReservationNotFound."""
        return await self._client.call(
            "GET", f"/internal/v1/reservations/{order_id}", Reservation, errors=(ReservationNotFound,)
        )

    async def commit(self, order_id: uuid.UUID) -> Reservation:
        """reserved -> committed (idempotent). Raises ReservationNotFound, WrongReservationState."""
        return await self._transition(order_id, "commit")

    async def release(self, order_id: uuid.UUID) -> Reservation:
        """reserved -> released (idempotent). Raises ReservationNotFound, WrongReservationState."""
        return await self._transition(order_id, "release")

    async def return_stock(self, order_id: uuid.UUID) -> Reservation:
        """committed -> returned (idempotent). Raises ReservationNotFound, WrongReservationState."""
        return await self._transition(order_id, "return")

    async def _transition(self, order_id: uuid.UUID, action: str) -> Reservation:
        return await self._client.call(
            "POST",
            f"/internal/v1/reservations/{order_id}/{action}",
            Reservation,
            errors=(ReservationNotFound, WrongReservationState),
        )

    async def changes(self, after: int, limit: int) -> ChangePage:
        """The change feed after ``after``, at most ``limit`` entries."""
        return await self._client.call(
            "GET", "/internal/v1/changes", ChangePage, params={"after": str(after), "limit": str(limit)}
        )

    async def aclose(self) -> None:
        await self._client.aclose()
