"""Named errors: status, kind and title come from the class, and the bodies are byte for byte what clients
have always received (the literals below are those bodies, key order included)."""

from __future__ import annotations

import json
import uuid

import pytest

from services.kit.errors import Conflict, NamedProblem, NotFound, Problem, ServiceUnavailable, problem_responses
from services.orders.saga import OrderOutOfStock, PaymentDeclined, UnknownProduct
from services.payments.contract import Declined, RefundExceedsCapture
from services.products.contract import OutOfStock, Shortage, WrongReservationState

BASE = "https://shop.test/problems/"
PID = uuid.UUID("00000000-0000-4000-8000-00000000000c")


def wire(problem: Problem) -> str:
    return json.dumps(problem.body(BASE, "/i"))


@pytest.mark.parametrize(
    ("named", "bare"),
    [
        (NotFound("No such payment."), Problem(404, "No such payment.")),
        (Conflict("Busy."), Problem(409, "Busy.")),
        (ServiceUnavailable("Down.", order_id="o"), Problem(503, "Down.", order_id="o")),
    ],
)
def test_a_bare_problem_takes_kind_and_title_from_its_status_class(named: NamedProblem, bare: Problem) -> None:
    assert wire(named) == wire(bare)


def test_a_status_without_a_class_is_a_generic_error() -> None:
    assert wire(Problem(418, "Teapot.")) == (
        '{"type": "https://shop.test/problems/error", "title": "Error", "status": 418, "detail": "Teapot.", '
        '"instance": "/i", "request_id": "-"}'
    )


@pytest.mark.parametrize(
    ("problem", "body"),
    [
        (
            OutOfStock([Shortage(product_id=PID, requested=3, available=1)]),
            '{"type": "https://shop.test/problems/out-of-stock", "title": "Conflict", "status": 409, '
            '"detail": "Not enough stock for some items.", "instance": "/i", "request_id": "-", '
            '"shortages": [{"product_id": "00000000-0000-4000-8000-00000000000c", "requested": 3, "available": 1}]}',
        ),
        (
            WrongReservationState("Cannot commit a reservation that is released.", "released"),
            '{"type": "https://shop.test/problems/reservation-state", "title": "Conflict", "status": 409, '
            '"detail": "Cannot commit a reservation that is released.", "instance": "/i", "request_id": "-", '
            '"reservation_status": "released"}',
        ),
        (
            Declined(PID, "card_declined"),
            '{"type": "https://shop.test/problems/payment-declined", "title": "Payment declined", "status": 402, '
            '"detail": "The card was declined.", "instance": "/i", "request_id": "-", '
            '"payment_id": "00000000-0000-4000-8000-00000000000c", "reason": "card_declined"}',
        ),
        (
            RefundExceedsCapture(250),
            '{"type": "https://shop.test/problems/refund-exceeds-capture", "title": "Refund exceeds capture", '
            '"status": 409, "detail": "The refund would exceed what was captured and not yet refunded.", '
            '"instance": "/i", "request_id": "-", "refundable_cents": 250}',
        ),
        (
            OrderOutOfStock(
                "Not enough stock for some items; the order was rejected.",
                order_id="o",
                order_status="rejected",
                shortages=[],
            ),
            '{"type": "https://shop.test/problems/out-of-stock", "title": "Out of stock", "status": 409, '
            '"detail": "Not enough stock for some items; the order was rejected.", "instance": "/i", '
            '"request_id": "-", '
            '"order_id": "o", "order_status": "rejected", "shortages": []}',
        ),
        (
            UnknownProduct(
                "Some products do not exist; the order was rejected.",
                order_id="o",
                order_status="rejected",
                product_ids=[],
            ),
            '{"type": "https://shop.test/problems/unknown-product", "title": "Unknown product", "status": 422, '
            '"detail": "Some products do not exist; the order was rejected.", "instance": "/i", "request_id": "-", '
            '"order_id": "o", "order_status": "rejected", "product_ids": []}',
        ),
        (
            PaymentDeclined(
                "The card was declined; the order was not placed.",
                order_id="o",
                order_status="payment_failed",
                reason="card_declined",
                payment_id="p",
            ),
            '{"type": "https://shop.test/problems/payment-declined", "title": "Payment declined", "status": 402, '
            '"detail": "The card was declined; the order was not placed.", "instance": "/i", "request_id": "-", '
            '"order_id": "o", "order_status": "payment_failed", "reason": "card_declined", "payment_id": "p"}',
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Problem) else "",
)
def test_named_error_bodies_are_unchanged_on_the_wire(problem: NamedProblem, body: str) -> None:
    assert wire(problem) == body


def test_a_named_error_documents_its_status_with_the_generic_title() -> None:
    assert problem_responses(OutOfStock, 404) == problem_responses(409, 404)
    assert problem_responses(OutOfStock)[409]["description"] == "Conflict"
