"""The checkout saga: reserve (products) -> charge (payments) -> commit (products) -> confirm.

Rules that make it safe to crash or time out anywhere:

- every state change is a conditional ``UPDATE ... WHERE status = <expected>`` (and the database refuses
  illegal transitions), so the saga and the recovery loop can never both move an order;
- every remote step and every compensation is idempotent (the reservation is keyed by the order id, the
  charge's Idempotency-Key is the order id, a refund's key is derived from the payment id and the amount
  already refunded), so any of them can be repeated by the recovery loop;
- an order is marked ``failed`` only after its compensations succeeded; when one cannot be done now the
  order stays where it is and the recovery loop finishes the job (``services/orders/recovery.py``);
- the client's Idempotency-Key gets its final response in the same transaction as the final state; a
  503 after which nothing stands (the order is ``failed``, everything undone) drops the key so the
  client may retry; a 503 with work left over keeps the key in flight until recovery stores the outcome.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from services.kit.cards import Card
from services.kit.errors import Conflict, NamedProblem, ServiceUnavailable, ValidationFailed
from services.kit.http import ServiceCallError, UnexpectedAnswer
from services.orders import store
from services.orders.models import OrderLine
from services.orders.settings import Settings
from services.payments.contract import ChargeRequest, Declined, PaymentsClient, RefundExceedsCapture
from services.products.contract import (
    OutOfStock,
    ProductNotFound,
    ProductsClient,
    ReservationConflict,
    ReservationLine,
    ReservationNotFound,
    WrongReservationState,
)

log = logging.getLogger(__name__)

ORDERS_PATH = "/api/v1/orders"
MAX_TOTAL_CENTS = 100_000_000_000  # what payments accepts in one charge

T = TypeVar("T")


# The problems a placed order can end with (the public answers of POST /api/v1/orders). Each carries
# ``order_id`` and ``order_status`` and is stored as the Idempotency-Key's final response.
class OrderOutOfStock(Conflict):
    kind, title = "out-of-stock", "Out of stock"


class UnknownProduct(ValidationFailed):
    kind, title = "unknown-product", "Unknown product"


class MixedCurrencies(ValidationFailed):
    kind, title = "mixed-currencies", "Mixed currencies"


class OrderTooLarge(ValidationFailed):
    kind, title = "order-too-large", "Order too large"


class PaymentDeclined(NamedProblem):
    status, kind, title = 402, "payment-declined", "Payment declined"


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]


class Saga:
    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, products: ProductsClient, payments: PaymentsClient
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.products = products
        self.payments = payments

    # ---- plumbing -------------------------------------------------------------------------------

    def body(self, problem: NamedProblem) -> dict[str, Any]:
        return problem.body(self.settings.problem_base_uri, ORDERS_PATH)

    def declined(self, order_id: uuid.UUID, decline: Declined) -> dict[str, Any]:
        """The order's answer to a declined charge, whether the saga saw the 402 or recovery read the payment."""
        return self.body(
            PaymentDeclined(
                "The card was declined; the order was not placed.",
                order_id=str(order_id),
                order_status="payment_failed",
                reason=decline.reason,
                payment_id=str(decline.payment_id),
            )
        )

    async def unavailable(self, order_id: uuid.UUID, why: str) -> Outcome:
        status = None
        try:
            current = await store.row(self.pool, order_id)
            status = current.status if current else None
        except (OSError, asyncpg.PostgresError):
            pass
        log.warning(
            "saga could not finish",
            extra={"event": "saga_unavailable", "order_id": str(order_id), "why": why, "order_status": status},
        )
        return Outcome(
            503,
            self.body(
                ServiceUnavailable(
                    "A service this order depends on is unavailable; the order was not completed.",
                    order_id=str(order_id),
                    order_status=status,
                )
            ),
        )

    async def end(
        self, order_id: uuid.UUID, expected: str, new: str, status_code: int, body: dict[str, Any], **fields: Any
    ) -> Outcome:
        """A final state and the stored response, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await store.transition(conn, order_id, expected, new, **fields)
            if moved:
                await store.finalize(conn, order_id, status_code, body)
        if not moved:
            return await self.unavailable(order_id, f"order left {expected} meanwhile")
        log.info("order " + new, extra={"event": f"order_{new}", "order_id": str(order_id)})
        return Outcome(status_code, body)

    # ---- idempotent remote steps ----------------------------------------------------------------
    # Each raises ServiceCallError (UnexpectedAnswer included) when the step cannot be done now.

    async def release(self, order_id: uuid.UUID) -> None:
        """No stock stays held for this order: release a reservation, return committed stock."""
        try:
            await self.products.release(order_id)
        except ReservationNotFound:  # never reserved
            return
        except WrongReservationState:  # committed (or returned): give the stock back
            try:
                await self.products.return_stock(order_id)
            except (ReservationNotFound, WrongReservationState) as exc:
                raise UnexpectedAnswer("products", exc.status, f"return: {exc.kind}") from None

    async def refund_rest(self, order_id: uuid.UUID, payment_id: uuid.UUID) -> None:
        """Refund what of a capture is not refunded yet (all of it, or the rest after a partial refund).

        Reads the payment first; the refund's key names the amount already refunded, so a repeat in the same
        state replays the same refund (at most once) and a repeat after it succeeded finds nothing left.
        A refund made meanwhile by someone else (:class:`RefundExceedsCapture`) means: read again."""
        for _ in range(3):
            payment = next((p for p in await self.payments.of_order(order_id) if p.id == payment_id), None)
            if payment is None:
                raise ServiceCallError("payments", True, f"payment {payment_id} is not listed for the order")
            rest = payment.amount_cents - payment.refunded_cents
            if payment.status != "captured" or rest <= 0:
                return
            try:
                await self.payments.refund(payment_id, rest, f"refund-rest:{payment_id}:{payment.refunded_cents}")
            except RefundExceedsCapture:
                continue
            except NamedProblem as exc:  # not found, not captured: the listing above says otherwise
                raise UnexpectedAnswer("payments", exc.status, f"refund: {exc.kind}") from None
            log.info(
                "payment refunded",
                extra={
                    "event": "refund_done",
                    "order_id": str(order_id),
                    "payment_id": str(payment_id),
                    "amount_cents": rest,
                },
            )
            return
        raise ServiceCallError("payments", True, "refund kept exceeding the capture")

    async def fail(self, order_id: uuid.UUID, expected: str, reason: str, capture: uuid.UUID | None = None) -> Outcome:
        """Compensate (refund a capture, release the stock), then ``expected -> failed``; the client may retry.
        If a compensation cannot run now, the order stays put for the recovery loop."""
        try:
            if capture is not None:
                await self.refund_rest(order_id, capture)
            await self.release(order_id)
        except ServiceCallError as exc:
            return await self.unavailable(order_id, f"{reason}; compensation pending ({exc})")
        return await self.mark_failed(order_id, expected, reason)

    async def mark_failed(self, order_id: uuid.UUID, expected: str, reason: str) -> Outcome:
        """``expected -> failed`` once nothing stands any more; the key is dropped so the client may retry."""
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await store.transition(
                conn, order_id, expected, "failed", failure_reason=reason[:200], needs_settle=True
            )
            if moved:
                await store.forget_key(conn, order_id)
        log.warning("order failed", extra={"event": "order_failed", "order_id": str(order_id), "why": reason})
        return await self.unavailable(order_id, reason)

    # ---- the saga -------------------------------------------------------------------------------

    async def place(self, order_id: uuid.UUID, user_id: uuid.UUID, lines: list[OrderLine], card: Card) -> Outcome:
        oid = str(order_id)
        log.info("saga started", extra={"event": "saga_started", "order_id": oid})
        items = [ReservationLine(product_id=line.product_id, quantity=line.quantity) for line in lines]
        try:
            reservation = await self.products.reserve(order_id, items)
        except OutOfStock as exc:
            body = self.body(
                OrderOutOfStock(
                    "Not enough stock for some items; the order was rejected.",
                    order_id=oid,
                    order_status="rejected",
                    shortages=[s.model_dump(mode="json") for s in exc.shortages],
                )
            )
            return await self.end(order_id, "pending", "rejected", 409, body, failure_reason="out of stock")
        except ProductNotFound as exc:
            body = self.body(
                UnknownProduct(
                    "Some products do not exist; the order was rejected.",
                    order_id=oid,
                    order_status="rejected",
                    product_ids=[str(p) for p in exc.product_ids],
                )
            )
            return await self.end(order_id, "pending", "rejected", 422, body, failure_reason="unknown product")
        except (UnexpectedAnswer, ReservationConflict) as exc:
            log.error(
                "unexpected reservation answer",
                extra={"event": "saga_unexpected", "order_id": oid, "status": exc.status},
            )
            return await self.fail(order_id, "pending", f"reservation answered {exc.status}")
        except ServiceCallError as exc:
            if not exc.sent:  # the reservation never left: nothing to release
                return await self.mark_failed(order_id, "pending", f"products unavailable: {exc}")
            return await self.fail(order_id, "pending", f"products unavailable: {exc}")

        reserved = reservation.items
        currencies = {i.currency for i in reserved}
        total = sum(i.unit_price_cents * i.quantity for i in reserved)
        if len(currencies) != 1 or total > MAX_TOTAL_CENTS:
            try:
                await self.release(order_id)
            except ServiceCallError as exc:
                return await self.unavailable(order_id, f"release after a refused order: {exc}")
            refused: NamedProblem
            if len(currencies) != 1:
                reason = "mixed currencies"
                refused = MixedCurrencies(
                    "The products are priced in different currencies; order them separately.",
                    order_id=oid,
                    order_status="rejected",
                )
            else:
                reason = "order too large"
                refused = OrderTooLarge(
                    "The order total is above what one payment can take.", order_id=oid, order_status="rejected"
                )
            return await self.end(order_id, "pending", "rejected", 422, self.body(refused), failure_reason=reason)
        currency = currencies.pop()
        if not await store.record_reservation(
            self.pool, order_id, total, currency, [line.model_dump() for line in reserved]
        ):
            return await self.unavailable(order_id, "order left pending meanwhile")
        log.info("stock reserved", extra={"event": "order_reserved", "order_id": oid, "total_cents": total})

        charge = ChargeRequest(order_id=order_id, user_id=user_id, amount_cents=total, currency=currency, card=card)
        try:
            payment = await self.payments.charge(charge, idempotency_key=oid)
        except Declined as declined:
            try:
                await self.release(order_id)
            except ServiceCallError as exc:
                return await self.unavailable(order_id, f"release after a decline: {exc}")
            return await self.end(
                order_id,
                "reserved",
                "payment_failed",
                402,
                self.declined(order_id, declined),
                payment_id=declined.payment_id,
                failure_reason="payment declined",
            )
        except ServiceCallError as exc:
            if not exc.sent:  # the charge never left: nothing can have been captured
                return await self.fail(order_id, "reserved", f"payments unavailable: {exc}")
            return await self._charge_unknown(order_id, str(exc))
        return await self.finish_paid(order_id, "reserved", payment.id)

    async def _charge_unknown(self, order_id: uuid.UUID, why: str) -> Outcome:
        """The charge may or may not have happened: ask payments, then undo whatever stands."""
        try:
            captured = [p for p in await self.payments.of_order(order_id) if p.status == "captured"]
        except ServiceCallError as exc:
            return await self.unavailable(order_id, f"{why}; lookup failed ({exc})")
        return await self.fail(order_id, "reserved", why, captured[0].id if captured else None)

    async def finish_paid(self, order_id: uuid.UUID, expected: str, payment_id: uuid.UUID) -> Outcome:
        """From a capture to a confirmed order: record it (reserved -> paid), commit the stock, confirm."""
        oid = str(order_id)
        if expected == "reserved":
            if not await store.transition(self.pool, order_id, "reserved", "paid", payment_id=payment_id):
                return await self.unavailable(order_id, "order left reserved meanwhile")
            log.info("order paid", extra={"event": "order_paid", "order_id": oid, "payment_id": str(payment_id)})
        try:
            await self.products.commit(order_id)
        except (ReservationNotFound, WrongReservationState) as exc:  # gone: the order cannot be fulfilled
            return await self.fail(order_id, "paid", f"commit impossible ({exc.kind})", payment_id)
        except ServiceCallError as exc:
            return await self.unavailable(order_id, f"commit: {exc}")
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await store.transition(conn, order_id, "paid", "confirmed")
            loaded = await store.load(conn, order_id)
            assert loaded is not None
            body = loaded[0].model_dump(mode="json")
            if moved:
                await store.finalize(conn, order_id, 201, body)
        if not moved:
            return await self.unavailable(order_id, "order left paid meanwhile")
        log.info("order confirmed", extra={"event": "order_confirmed", "order_id": oid})
        return Outcome(201, body)

    async def finish_cancel(self, order_id: uuid.UUID, payment_id: uuid.UUID) -> None:
        """cancelling -> cancelled: refund what is left of the capture, return the stock. Raises
        ServiceCallError to retry later."""
        await self.refund_rest(order_id, payment_id)
        await self.release(order_id)
        if await store.transition(self.pool, order_id, "cancelling", "cancelled"):
            log.info("order cancelled", extra={"event": "order_cancelled", "order_id": str(order_id)})


async def shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Run a saga step to its end even if the client goes away (a cancelled request must not leave an
    order half-way)."""
    return await asyncio.shield(asyncio.ensure_future(coro))
