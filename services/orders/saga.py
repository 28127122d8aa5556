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
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.kit.cards import Card
from services.kit.errors import problem_body
from services.kit.http import ServiceCallError, ServiceClient, ServiceResponse
from services.orders import store
from services.orders.models import OrderLine
from services.orders.settings import Settings

log = logging.getLogger(__name__)

ORDERS_PATH = "/api/v1/orders"
MAX_TOTAL_CENTS = 100_000_000_000  # what payments accepts in one charge

_TITLES = {"out-of-stock": "Out of stock", "payment-declined": "Payment declined",
           "upstream-unavailable": "Service unavailable", "unknown-product": "Unknown product",
           "mixed-currencies": "Mixed currencies", "order-too-large": "Order too large"}


class Unreachable(Exception):
    """A peer did not answer usefully. ``sent`` is False only when the request certainly never left."""

    def __init__(self, peer: str, sent: bool, why: str) -> None:
        super().__init__(f"{peer}: {why}")
        self.peer = peer
        self.sent = sent


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]


def _kind(response: ServiceResponse) -> str:
    try:
        return str(response.json().get("type", "")).rsplit("/", 1)[-1]
    except ValueError:
        return ""


class Saga:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, products: ServiceClient,
                 payments: ServiceClient) -> None:
        self.pool = pool
        self.settings = settings
        self.products = products
        self.payments = payments

    # ---- plumbing -------------------------------------------------------------------------------

    async def call(self, client: ServiceClient, method: str, path: str, **kwargs: Any) -> ServiceResponse:
        try:
            response = await client.request(method, path, **kwargs)
        except ServiceCallError as exc:
            raise Unreachable(client.callee, exc.sent, str(exc)) from exc
        if response.status_code >= 500:
            raise Unreachable(client.callee, True, f"status {response.status_code}")
        return response

    def problem(self, status: int, detail: str, kind: str, **ext: Any) -> dict[str, Any]:
        return problem_body(self.settings.problem_base_uri, status, detail, ORDERS_PATH, kind=kind,
                            title=_TITLES.get(kind), **ext)

    async def unavailable(self, order_id: uuid.UUID, why: str) -> Outcome:
        status = None
        try:
            current = await store.row(self.pool, order_id)
            status = current.status if current else None
        except (OSError, asyncpg.PostgresError):
            pass
        log.warning("saga could not finish", extra={"event": "saga_unavailable", "order_id": str(order_id),
                                                    "why": why, "order_status": status})
        return Outcome(503, self.problem(
            503, "A service this order depends on is unavailable; the order was not completed.",
            "upstream-unavailable", order_id=str(order_id), order_status=status))

    async def end(self, order_id: uuid.UUID, expected: str, new: str, status_code: int, body: dict[str, Any],
                  **fields: Any) -> Outcome:
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

    async def release(self, order_id: uuid.UUID) -> None:
        """No stock stays held for this order: release a reservation, return committed stock."""
        r = await self.call(self.products, "POST", f"/internal/v1/reservations/{order_id}/release")
        if r.status_code in (200, 404):  # released now or before, or never reserved
            return
        if r.status_code == 409:  # committed (or returned): give the stock back
            r = await self.call(self.products, "POST", f"/internal/v1/reservations/{order_id}/return")
            if r.status_code == 200:
                return
        raise Unreachable("products", True, f"release answered {r.status_code}")

    async def refund_rest(self, order_id: uuid.UUID, payment_id: uuid.UUID) -> None:
        """Refund what of a capture is not refunded yet (all of it, or the rest after a partial refund).

        Reads the payment first; the refund's key names the amount already refunded, so a repeat in the same
        state replays the same refund (at most once) and a repeat after it succeeded finds nothing left.
        A refund made meanwhile by someone else (409 ``refund-exceeds-capture``) means: read again."""
        for _ in range(3):
            payment = next((p for p in await self.payments_of(order_id) if p["id"] == str(payment_id)), None)
            if payment is None:
                raise Unreachable("payments", True, f"payment {payment_id} is not listed for the order")
            refunded = int(payment["refunded_cents"])
            rest = int(payment["amount_cents"]) - refunded
            if payment["status"] != "captured" or rest <= 0:
                return
            r = await self.call(self.payments, "POST", f"/internal/v1/payments/{payment_id}/refunds",
                                json={"amount_cents": rest},
                                headers={"Idempotency-Key": f"refund-rest:{payment_id}:{refunded}"})
            if r.status_code == 201:
                log.info("payment refunded", extra={"event": "refund_done", "order_id": str(order_id),
                                                    "payment_id": str(payment_id), "amount_cents": rest})
                return
            if not (r.status_code == 409 and _kind(r) == "refund-exceeds-capture"):
                break
        raise Unreachable("payments", True, f"refund answered {r.status_code}")

    async def payments_of(self, order_id: uuid.UUID) -> list[dict[str, Any]]:
        r = await self.call(self.payments, "GET", "/internal/v1/payments", params={"order_id": str(order_id)})
        if r.status_code != 200:
            raise Unreachable("payments", True, f"lookup answered {r.status_code}")
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    async def fail(self, order_id: uuid.UUID, expected: str, reason: str,
                   capture: dict[str, Any] | None = None) -> Outcome:
        """Compensate (refund a capture, release the stock), then ``expected -> failed``; the client may retry.
        If a compensation cannot run now, the order stays put for the recovery loop."""
        try:
            if capture is not None:
                await self.refund_rest(order_id, uuid.UUID(str(capture["id"])))
            await self.release(order_id)
        except Unreachable as exc:
            return await self.unavailable(order_id, f"{reason}; compensation pending ({exc})")
        return await self.mark_failed(order_id, expected, reason)

    async def mark_failed(self, order_id: uuid.UUID, expected: str, reason: str) -> Outcome:
        """``expected -> failed`` once nothing stands any more; the key is dropped so the client may retry."""
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await store.transition(conn, order_id, expected, "failed",
                                           failure_reason=reason[:200], needs_settle=True)
            if moved:
                await store.forget_key(conn, order_id)
        log.warning("order failed", extra={"event": "order_failed", "order_id": str(order_id), "why": reason})
        return await self.unavailable(order_id, reason)

    # ---- the saga -------------------------------------------------------------------------------

    async def place(self, order_id: uuid.UUID, user_id: uuid.UUID, lines: list[OrderLine], card: Card) -> Outcome:
        oid = str(order_id)
        log.info("saga started", extra={"event": "saga_started", "order_id": oid})
        items = [{"product_id": str(line.product_id), "quantity": line.quantity} for line in lines]
        try:
            r = await self.call(self.products, "POST", "/internal/v1/reservations",
                                json={"order_id": oid, "items": items})
        except Unreachable as exc:
            if not exc.sent:  # the reservation never left: nothing to release
                return await self.mark_failed(order_id, "pending", f"products unavailable: {exc}")
            return await self.fail(order_id, "pending", f"products unavailable: {exc}")
        if r.status_code == 409 and _kind(r) == "out-of-stock":
            body = self.problem(409, "Not enough stock for some items; the order was rejected.", "out-of-stock",
                                order_id=oid, order_status="rejected", shortages=r.json().get("shortages", []))
            return await self.end(order_id, "pending", "rejected", 409, body, failure_reason="out of stock")
        if r.status_code == 404 and _kind(r) == "product-not-found":
            body = self.problem(422, "Some products do not exist; the order was rejected.", "unknown-product",
                                order_id=oid, order_status="rejected", product_ids=r.json().get("product_ids", []))
            return await self.end(order_id, "pending", "rejected", 422, body, failure_reason="unknown product")
        if r.status_code not in (200, 201):
            log.error("unexpected reservation answer", extra={"event": "saga_unexpected", "order_id": oid,
                                                               "status": r.status_code})
            return await self.fail(order_id, "pending", f"reservation answered {r.status_code}")

        reserved = r.json()["items"]
        currencies = {i["currency"] for i in reserved}
        total = sum(int(i["unit_price_cents"]) * int(i["quantity"]) for i in reserved)
        if len(currencies) != 1 or total > MAX_TOTAL_CENTS:
            try:
                await self.release(order_id)
            except Unreachable as exc:
                return await self.unavailable(order_id, f"release after a refused order: {exc}")
            if len(currencies) != 1:
                reason = "mixed currencies"
                body = self.problem(422, "The products are priced in different currencies; order them separately.",
                                    "mixed-currencies", order_id=oid, order_status="rejected")
            else:
                reason = "order too large"
                body = self.problem(422, "The order total is above what one payment can take.", "order-too-large",
                                    order_id=oid, order_status="rejected")
            return await self.end(order_id, "pending", "rejected", 422, body, failure_reason=reason)
        currency = currencies.pop()
        if not await store.record_reservation(self.pool, order_id, total, currency, reserved):
            return await self.unavailable(order_id, "order left pending meanwhile")
        log.info("stock reserved", extra={"event": "order_reserved", "order_id": oid, "total_cents": total})

        charge = {"order_id": oid, "user_id": str(user_id), "amount_cents": total, "currency": currency,
                  "card": card.model_dump()}
        try:
            r = await self.call(self.payments, "POST", "/internal/v1/charges", json=charge,
                                headers={"Idempotency-Key": oid})
        except Unreachable as exc:
            if not exc.sent:  # the charge never left: nothing can have been captured
                return await self.fail(order_id, "reserved", f"payments unavailable: {exc}")
            return await self._charge_unknown(order_id, str(exc))
        if r.status_code == 402:
            declined = r.json()
            try:
                await self.release(order_id)
            except Unreachable as exc:
                return await self.unavailable(order_id, f"release after a decline: {exc}")
            body = self.problem(402, "The card was declined; the order was not placed.", "payment-declined",
                                order_id=oid, order_status="payment_failed", reason=declined.get("reason"),
                                payment_id=declined.get("payment_id"))
            return await self.end(order_id, "reserved", "payment_failed", 402, body,
                                  payment_id=uuid.UUID(declined["payment_id"]), failure_reason="payment declined")
        if r.status_code != 201:
            return await self._charge_unknown(order_id, f"charge answered {r.status_code}")
        payment = r.json()
        return await self.finish_paid(order_id, "reserved", payment)

    async def _charge_unknown(self, order_id: uuid.UUID, why: str) -> Outcome:
        """The charge may or may not have happened: ask payments, then undo whatever stands."""
        try:
            captured = [p for p in await self.payments_of(order_id) if p["status"] == "captured"]
        except Unreachable as exc:
            return await self.unavailable(order_id, f"{why}; lookup failed ({exc})")
        return await self.fail(order_id, "reserved", why, captured[0] if captured else None)

    async def finish_paid(self, order_id: uuid.UUID, expected: str, payment: dict[str, Any]) -> Outcome:
        """From a capture to a confirmed order: record it (reserved -> paid), commit the stock, confirm."""
        oid = str(order_id)
        payment_id = uuid.UUID(str(payment["id"]))
        if expected == "reserved":
            if not await store.transition(self.pool, order_id, "reserved", "paid", payment_id=payment_id):
                return await self.unavailable(order_id, "order left reserved meanwhile")
            log.info("order paid", extra={"event": "order_paid", "order_id": oid, "payment_id": str(payment_id)})
        try:
            r = await self.call(self.products, "POST", f"/internal/v1/reservations/{order_id}/commit")
        except Unreachable as exc:
            return await self.unavailable(order_id, f"commit: {exc}")
        if r.status_code in (404, 409):  # the reservation is gone: the order cannot be fulfilled
            return await self.fail(order_id, "paid", f"commit impossible ({_kind(r)})", payment)
        if r.status_code != 200:
            return await self.unavailable(order_id, f"commit answered {r.status_code}")
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
        """cancelling -> cancelled: refund what is left of the capture, return the stock. Raises Unreachable to
        retry later."""
        await self.refund_rest(order_id, payment_id)
        await self.release(order_id)
        if await store.transition(self.pool, order_id, "cancelling", "cancelled"):
            log.info("order cancelled", extra={"event": "order_cancelled", "order_id": str(order_id)})


async def shielded(coro: Any) -> Any:
    """Run a saga step to its end even if the client goes away (a cancelled request must not leave an
    order half-way)."""
    return await asyncio.shield(asyncio.ensure_future(coro))
