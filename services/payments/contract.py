"""The payments internal API (``/internal/v1``), said once: its request and response models, its named
errors, and the typed client orders uses for charges, refunds and lookups.

The service declares these models as its routes' ``response_model`` and raises these errors; orders'
:class:`PaymentsClient` reads the same models and turns each problem body back into the same error class.
A decline's reason has one name per body: ``reason`` in the 402 of a charge (:class:`Declined`),
``decline_reason`` on a stored :class:`Payment`; :meth:`Declined.of` is the one translation between them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.kit.cards import Card
from services.kit.errors import Conflict, NamedProblem, NotFound, ProblemBody
from services.kit.http import ServiceClient
from services.payments.models import PublicPayment

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
# strict: JSON true or "100" is not an amount (lax mode would read them as 1 and 100).
Cents = Annotated[int, Field(strict=True, gt=0, le=100_000_000_000)]
DeclineReason = Literal["card_declined", "insufficient_funds"]


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


class Payment(PublicPayment):
    user_id: uuid.UUID
    decline_reason: DeclineReason | None = None

    @model_validator(mode="after")
    def _declined_has_reason(self) -> Payment:
        # The table's CHECK declined_has_reason, so a caller can rely on it too.
        if (self.status == "declined") != (self.decline_reason is not None):
            raise ValueError("a declined payment has a decline_reason, a captured one none")
        return self


class PaymentList(BaseModel):
    items: list[Payment]


class Refund(BaseModel):
    id: uuid.UUID
    payment_id: uuid.UUID
    amount_cents: int
    created_at: datetime


# --- named errors -------------------------------------------------------------------------------------


class Declined(NamedProblem):
    """The processor declined the card; the declined payment is stored (its id is ``payment_id``)."""

    status, kind, title = 402, "payment-declined", "Payment declined"

    def __init__(self, payment_id: uuid.UUID, reason: DeclineReason, detail: str = "The card was declined.") -> None:
        super().__init__(detail, payment_id=str(payment_id), reason=reason)
        self.payment_id = payment_id
        self.reason = reason

    @classmethod
    def of(cls, payment: Payment) -> Self:
        """The decline a stored declined payment records (what its charge answered)."""
        if payment.decline_reason is None:
            raise ValueError(f"payment {payment.id} is not declined")
        return cls(payment.id, payment.decline_reason)

    @classmethod
    def received(cls, body: ProblemBody) -> Self:
        return cls(body.member("payment_id", uuid.UUID), body.member("reason", DeclineReason), body.detail)


class PaymentNotFound(NotFound):
    """No payment with that id (``not-found``, the generic kind)."""


class PaymentNotCaptured(Conflict):
    """A declined payment cannot be refunded."""

    kind, title = "payment-not-captured", "Payment not captured"


class RefundExceedsCapture(Conflict):
    """The refund would exceed what was captured and not yet refunded (a concurrent refund, say)."""

    kind, title = "refund-exceeds-capture", "Refund exceeds capture"

    def __init__(
        self, refundable_cents: int, detail: str = "The refund would exceed what was captured and not yet refunded."
    ) -> None:
        super().__init__(detail, refundable_cents=refundable_cents)
        self.refundable_cents = refundable_cents

    @classmethod
    def received(cls, body: ProblemBody) -> Self:
        return cls(body.member("refundable_cents", int), body.detail)


# --- the client ---------------------------------------------------------------------------------------


class PaymentsClient:
    """The payments internal API as orders sees it. Every method raises the named errors it lists,
    :class:`services.kit.http.UnexpectedAnswer` for any other answer, and
    :class:`services.kit.http.ServiceCallError` when payments cannot be reached or answers 5xx."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def charge(self, charge: ChargeRequest, idempotency_key: str) -> Payment:
        """A captured payment. Raises Declined."""
        return await self._client.call(
            "POST",
            "/internal/v1/charges",
            Payment,
            json=charge.model_dump(mode="json"),
            headers={"Idempotency-Key": idempotency_key},
            errors=(Declined,),
        )

    async def refund(self, payment_id: uuid.UUID, amount_cents: int, idempotency_key: str) -> Refund:
        """Raises PaymentNotFound, PaymentNotCaptured, RefundExceedsCapture."""
        return await self._client.call(
            "POST",
            f"/internal/v1/payments/{payment_id}/refunds",
            Refund,
            json=RefundRequest(amount_cents=amount_cents).model_dump(mode="json"),
            headers={"Idempotency-Key": idempotency_key},
            errors=(PaymentNotFound, PaymentNotCaptured, RefundExceedsCapture),
        )

    async def of_order(self, order_id: uuid.UUID) -> list[Payment]:
        """The order's payments, oldest first."""
        found = await self._client.call("GET", "/internal/v1/payments", PaymentList, params={"order_id": str(order_id)})
        return found.items

    async def aclose(self) -> None:
        await self._client.aclose()
