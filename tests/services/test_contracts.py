"""The typed clients of the internal APIs (``services/*/contract.py``): each answer of a callee becomes the
contract's model or the contract's named error, and anything outside the contract a named
:class:`UnexpectedAnswer`, never a ``KeyError`` or a half-read dict.

The callee here is a real HTTP server on loopback answering canned bodies, so the client's whole path
(aiohttp, status, body parsing) runs; the saga tests run the same clients against the real services."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from aiohttp import web

from services.kit import keys
from services.kit.auth import ServiceTokenIssuer
from services.kit.errors import PROBLEM_JSON, NamedProblem
from services.kit.http import ServiceCallError, ServiceClient, UnexpectedAnswer
from services.kit.settings import KitSettings
from services.payments.contract import (
    ChargeRequest,
    Declined,
    Payment,
    PaymentNotCaptured,
    PaymentNotFound,
    PaymentsClient,
    RefundExceedsCapture,
)
from services.products.contract import (
    OutOfStock,
    ProductNotFound,
    ProductsClient,
    Reservation,
    ReservationConflict,
    ReservationLine,
    ReservationNotFound,
    Shortage,
    WrongReservationState,
)

BASE = "https://problems.test/"
ORDER = uuid.UUID("00000000-0000-4000-8000-00000000000a")
PAYMENT = uuid.UUID("00000000-0000-4000-8000-00000000000b")
PRODUCT = uuid.UUID("00000000-0000-4000-8000-00000000000c")
CARD = {"number": "4000 0000 0000 0002", "exp_month": 12, "exp_year": datetime.now(UTC).year + 2, "cvc": "123"}
T = TypeVar("T")


def problem(status: int, kind: str, **members: Any) -> tuple[int, dict[str, Any]]:
    return status, {
        "type": f"{BASE}{kind}",
        "title": "Some title",
        "status": status,
        "detail": "Some detail.",
        "instance": "/internal/v1/x",
        "request_id": "r-1",
        **members,
    }


def call(answer: tuple[int, Any] | None, use: Callable[[ProductsClient, PaymentsClient], Awaitable[T]]) -> T:
    """Run ``use`` against a callee answering every request with ``answer`` (``None``: nothing listens)."""

    async def run() -> T:
        runner: web.AppRunner | None = None
        url = "http://127.0.0.1:9"  # discard port: nothing listens
        if answer is not None:
            status, body = answer

            async def handle(request: web.Request) -> web.Response:
                text = body if isinstance(body, str) else json.dumps(body)
                return web.Response(
                    status=status, text=text, content_type=PROBLEM_JSON if status >= 400 else "application/json"
                )

            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            url = f"http://127.0.0.1:{port}"
        settings = KitSettings(service_name="orders", service_urls={"products": url, "payments": url})
        issuer = ServiceTokenIssuer("orders", keys.generate_private_pem())
        products = ProductsClient(ServiceClient(settings, "products", issuer, timeout=2, max_connections=2))
        payments = PaymentsClient(ServiceClient(settings, "payments", issuer, timeout=2, max_connections=2))
        try:
            return await use(products, payments)
        finally:
            await products.aclose()
            await payments.aclose()
            if runner is not None:
                await runner.cleanup()

    return asyncio.run(run())


def charge(_: ProductsClient, payments: PaymentsClient) -> Awaitable[Payment]:
    request = ChargeRequest.model_validate(
        {"order_id": str(ORDER), "user_id": str(uuid.uuid4()), "amount_cents": 1250, "currency": "EUR", "card": CARD}
    )
    return payments.charge(request, idempotency_key=str(ORDER))


def raised(
    answer: tuple[int, Any] | None, use: Callable[[ProductsClient, PaymentsClient], Awaitable[Any]]
) -> BaseException:
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is what the tests below check
        call(answer, use)
    return info.value


def test_a_declined_charge_is_declined_with_its_reason_and_payment() -> None:
    error = raised(problem(402, "payment-declined", payment_id=str(PAYMENT), reason="insufficient_funds"), charge)
    assert isinstance(error, Declined)
    assert (error.reason, error.payment_id) == ("insufficient_funds", PAYMENT)


def test_a_stored_declined_payment_gives_the_same_decline_as_the_charge_answered() -> None:
    """Recovery reads a decline from the payment (``decline_reason``), the saga from the 402 (``reason``):
    one error class, so both build the same answer."""
    payment = Payment.model_validate(
        {
            "id": str(PAYMENT),
            "order_id": str(ORDER),
            "user_id": str(uuid.uuid4()),
            "status": "declined",
            "decline_reason": "card_declined",
            "amount_cents": 1250,
            "refunded_cents": 0,
            "currency": "EUR",
            "card": {"brand": "visa", "last4": "0002", "exp_month": 12, "exp_year": 2030},
            "created_at": "2026-12-01T00:00:00Z",
        }
    )
    from_payment = Declined.of(payment)
    received = raised(problem(402, "payment-declined", payment_id=str(PAYMENT), reason="card_declined"), charge)
    assert isinstance(received, Declined)
    assert (from_payment.reason, from_payment.payment_id) == (received.reason, received.payment_id)


def test_an_error_kind_the_contract_does_not_declare_is_an_unexpected_answer() -> None:
    error = raised(problem(409, "something-new"), charge)
    assert isinstance(error, UnexpectedAnswer)
    assert (error.status, error.sent, error.callee) == (409, True, "payments")


def test_a_declared_kind_without_its_members_is_an_unexpected_answer_not_a_key_error() -> None:
    error = raised(problem(402, "payment-declined", reason="card_declined"), charge)  # no payment_id
    assert isinstance(error, UnexpectedAnswer)
    assert "payment_id" in str(error)


def test_a_malformed_member_is_an_unexpected_answer_that_does_not_quote_it() -> None:
    error = raised(problem(402, "payment-declined", payment_id="4000000000000002", reason="card_declined"), charge)
    assert isinstance(error, UnexpectedAnswer)
    assert "4000000000000002" not in str(error)


def test_a_declared_kind_under_another_status_is_an_unexpected_answer() -> None:
    error = raised(problem(409, "payment-declined", payment_id=str(PAYMENT), reason="card_declined"), charge)
    assert isinstance(error, UnexpectedAnswer)


def test_an_error_body_that_is_not_a_problem_is_an_unexpected_answer() -> None:
    error = raised((404, "<html>not found</html>"), charge)
    assert isinstance(error, UnexpectedAnswer)
    assert error.status == 404


def test_a_success_body_outside_the_model_is_an_unexpected_answer() -> None:
    error = raised((201, {"id": str(PAYMENT), "status": "captured"}), charge)
    assert isinstance(error, UnexpectedAnswer)
    assert error.status == 201


def test_a_server_error_is_a_call_error_that_may_have_had_an_effect() -> None:
    error = raised(problem(500, "internal"), charge)
    assert isinstance(error, ServiceCallError)
    assert not isinstance(error, UnexpectedAnswer)
    assert error.sent


def test_a_callee_that_is_not_listening_is_a_call_error_that_never_left() -> None:
    error = raised(None, charge)
    assert isinstance(error, ServiceCallError)
    assert not error.sent


def test_out_of_stock_carries_typed_shortages() -> None:
    shortage = {"product_id": str(PRODUCT), "requested": 3, "available": 1}
    error = raised(
        problem(409, "out-of-stock", shortages=[shortage]),
        lambda products, _: products.reserve(ORDER, [ReservationLine(product_id=PRODUCT, quantity=3)]),
    )
    assert isinstance(error, OutOfStock)
    assert error.shortages == [Shortage(product_id=PRODUCT, requested=3, available=1)]


def test_a_reservation_answer_is_the_typed_reservation() -> None:
    line = {"product_id": str(PRODUCT), "quantity": 2, "name": "Lamp", "unit_price_cents": 700, "currency": "EUR"}
    reservation: Reservation = call(
        (201, {"order_id": str(ORDER), "status": "reserved", "items": [line]}),
        lambda products, _: products.reserve(ORDER, [ReservationLine(product_id=PRODUCT, quantity=2)]),
    )
    assert reservation.order_id == ORDER
    assert reservation.items[0].unit_price_cents * reservation.items[0].quantity == 1400


# Every named error of both contracts, as the callee raises it: the caller gets the same class and members.
CALLEE_ERRORS: list[NamedProblem] = [
    Declined(PAYMENT, "card_declined"),
    PaymentNotFound("No such payment."),
    PaymentNotCaptured("A declined payment cannot be refunded."),
    RefundExceedsCapture(250),
    OutOfStock([Shortage(product_id=PRODUCT, requested=5, available=0)]),
    ProductNotFound("Some products do not exist.", [PRODUCT]),
    ReservationConflict(f"Order {ORDER} already has a reservation with other items."),
    ReservationNotFound(f"No reservation for order {ORDER}."),
    WrongReservationState("Cannot commit a reservation that is released.", "released"),
]


@pytest.mark.parametrize("sent", CALLEE_ERRORS, ids=lambda e: type(e).__name__)
def test_each_named_error_crosses_the_wire_as_itself(sent: NamedProblem) -> None:
    uses: dict[type[NamedProblem], Callable[[ProductsClient, PaymentsClient], Awaitable[Any]]] = {
        Declined: charge,
        PaymentNotFound: lambda _, payments: payments.refund(PAYMENT, 100, "k"),
        PaymentNotCaptured: lambda _, payments: payments.refund(PAYMENT, 100, "k"),
        RefundExceedsCapture: lambda _, payments: payments.refund(PAYMENT, 100, "k"),
        OutOfStock: lambda products, _: products.reserve(ORDER, [ReservationLine(product_id=PRODUCT, quantity=5)]),
        ProductNotFound: lambda products, _: products.reserve(ORDER, [ReservationLine(product_id=PRODUCT, quantity=5)]),
        ReservationConflict: lambda products, _: products.reserve(
            ORDER, [ReservationLine(product_id=PRODUCT, quantity=5)]
        ),
        ReservationNotFound: lambda products, _: products.commit(ORDER),
        WrongReservationState: lambda products, _: products.commit(ORDER),
    }
    body = sent.body(BASE, "/internal/v1/x")
    got = raised((sent.status, body), uses[type(sent)])
    assert type(got) is type(sent)
    assert isinstance(got, NamedProblem)
    assert got.body(BASE, "/internal/v1/x") == body
