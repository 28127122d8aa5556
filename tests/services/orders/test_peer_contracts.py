"""A peer answering outside its contract (a body orders cannot read as the declared model or named error) is
a peer that did not answer usefully: the order ends compensated and the client gets the documented 503,
never a 500 with the order left half-way.

Payments is a stand-in here, answering charges with the body under test and listing no payment for the
order; products is the real service."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services.orders.support import Buyer, order_body, place, stock
from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack

PROBLEM = {
    "type": "https://x.test/problems/payment-declined",
    "title": "Payment declined",
    "status": 402,
    "detail": "The card was declined.",
    "instance": "/internal/v1/charges",
    "request_id": "r",
}


class StandInPayments:
    def __init__(self) -> None:
        self.charge_answer: tuple[int, dict[str, Any]] = (500, {})
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._send(*stand_in.charge_answer)

            def do_GET(self) -> None:  # the order's payments: none stands
                self._send(200, {"items": []})

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInPayments]:
    server = StandInPayments()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def orders_with_stand_in(
    stack: TestStack, products: ServiceProcess, stand_in: StandInPayments, keyring_jwks_url: str, logdir: Path
) -> Iterator[ServiceProcess]:
    env = {
        **stack.env_for("orders"),
        "JWKS_URL": keyring_jwks_url,
        "SERVICE_URLS": json.dumps({"products": products.url, "payments": stand_in.url}),
    }
    proc = ServiceProcess("orders", env, logdir).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param((402, {**PROBLEM, "reason": "card_declined"}), id="decline-without-payment-id"),
        pytest.param(
            (409, {**PROBLEM, "type": "https://x.test/problems/brand-new-kind", "status": 409}), id="undeclared-kind"
        ),
        pytest.param((201, {"id": str(uuid.uuid4()), "status": "captured"}), id="payment-missing-fields"),
    ],
)
def test_a_charge_answered_outside_the_contract_fails_the_order_cleanly(
    answer: tuple[int, dict[str, Any]],
    orders_with_stand_in: ServiceProcess,
    products: ServiceProcess,
    stand_in: StandInPayments,
    make_product: Callable[..., dict[str, Any]],
    buyer: Callable[[], Buyer],
) -> None:
    stand_in.charge_answer = answer
    p = make_product(stock=4)
    me = buyer()
    r = place(orders_with_stand_in, me, order_body((p["id"], 1)))
    assert r.status_code == 503, r.text
    problem = r.json()
    assert problem["type"].endswith("/upstream-unavailable")
    assert problem["order_status"] == "failed"
    assert stock(products, p["id"]) == (4, 4)
    got = httpx.get(f"{orders_with_stand_in.url}/api/v1/orders/{problem['order_id']}", headers=me.headers)
    assert got.json()["status"] == "failed"
