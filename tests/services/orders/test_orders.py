"""Orders contract: the saga's outcomes, idempotency, visibility, cancel/ship, the state machine.

After every test the end state is consistent (``consistent`` fixture): no order half-way, no stock held
and no capture standing for an order that is not confirmed, and the payments ledger balances.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from services.deploy.keyring import KeyRing
from services.runner.postgres import PostgresServer
from tests.services.orders.support import Buyer, db, order_body, place, stock, unfinished_problems
from tests.services.payments.support import (
    DECLINED,
    INSUFFICIENT,
    bad_tokens,
    card_data_in,
    ledger_problems,
    mint_token,
    service_token,
)
from tests.services.products.test_catalogue import CRAFTED_CURSORS
from tests.support import schema
from tests.support.procs import ServiceProcess

MakeProduct = Callable[..., dict[str, Any]]
NewBuyer = Callable[[], Buyer]


@pytest.fixture(autouse=True)
def consistent(
    pg: PostgresServer, orders: ServiceProcess, products: ServiceProcess, payments: ServiceProcess
) -> Iterator[None]:
    yield
    assert unfinished_problems(pg, orders, products, payments) == []
    assert ledger_problems(pg, db(payments)) == []


def payment_of(payments: ServiceProcess, keyring: KeyRing, order_id: str) -> list[dict[str, Any]]:
    token = service_token(keyring, "orders", "payments")
    r = httpx.get(
        f"{payments.url}/internal/v1/payments",
        params={"order_id": order_id},
        headers={"authorization": f"Bearer {token}"},
    )
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_an_order_is_confirmed_with_a_price_snapshot_stock_committed_and_one_capture(
    orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    keyring: KeyRing,
    make_product: MakeProduct,
    buyer: NewBuyer,
    admin: dict[str, str],
) -> None:
    """201 only once confirmed: stock has left, the card was charged the snapshot total exactly once."""
    a, b = make_product(stock=10, price_cents=1250), make_product(stock=5, price_cents=399)
    me = buyer()
    r = place(orders, me, order_body((a["id"], 2), (b["id"], 3)))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "confirmed"
    assert order["total_cents"] == 2 * 1250 + 3 * 399
    assert order["currency"] == "EUR"
    assert [(i["product_id"], i["quantity"], i["unit_price_cents"], i["name"]) for i in order["items"]] == [
        (a["id"], 2, 1250, a["name"]),
        (b["id"], 3, 399, b["name"]),
    ]
    assert stock(products, a["id"]) == (8, 8)
    assert stock(products, b["id"]) == (2, 2)
    [payment] = payment_of(payments, keyring, order["id"])
    assert payment["id"] == order["payment_id"]
    assert payment["status"] == "captured"
    assert payment["amount_cents"] == order["total_cents"]
    assert payment["user_id"] == str(me.user_id)
    # The snapshot does not move when the catalogue price does.
    r = httpx.patch(f"{products.url}/api/v1/products/{a['id']}", json={"price_cents": 9999}, headers=admin)
    assert r.status_code == 200, r.text
    again = httpx.get(f"{orders.url}/api/v1/orders/{order['id']}", headers=me.headers)
    assert again.status_code == 200
    assert again.json()["items"] == order["items"]
    assert again.json()["total_cents"] == order["total_cents"]


@pytest.mark.parametrize(("number", "reason"), [(DECLINED, "card_declined"), (INSUFFICIENT, "insufficient_funds")])
def test_a_declined_card_is_402_and_the_stock_is_released(
    orders: ServiceProcess,
    products: ServiceProcess,
    make_product: MakeProduct,
    buyer: NewBuyer,
    number: str,
    reason: str,
) -> None:
    p = make_product(stock=3)
    me = buyer()
    r = place(orders, me, order_body((p["id"], 2), number=number))
    assert r.status_code == 402, r.text
    problem = r.json()
    assert problem["type"].endswith("/payment-declined")
    assert problem["order_status"] == "payment_failed"
    assert problem["reason"] == reason
    assert stock(products, p["id"]) == (3, 3)
    got = httpx.get(f"{orders.url}/api/v1/orders/{problem['order_id']}", headers=me.headers).json()
    assert got["status"] == "payment_failed"
    assert got["payment_id"] == problem["payment_id"]


def test_a_shortage_is_409_and_the_order_rejected_without_touching_stock(
    orders: ServiceProcess, products: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer
) -> None:
    plenty, scarce = make_product(stock=10), make_product(stock=1)
    me = buyer()
    r = place(orders, me, order_body((plenty["id"], 1), (scarce["id"], 2)))
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"].endswith("/out-of-stock")
    assert problem["order_status"] == "rejected"
    assert problem["shortages"] == [{"product_id": scarce["id"], "requested": 2, "available": 1}]
    assert stock(products, plenty["id"]) == (10, 10)
    got = httpx.get(f"{orders.url}/api/v1/orders/{problem['order_id']}", headers=me.headers).json()
    assert got["status"] == "rejected"


def test_an_unknown_product_is_422(orders: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer) -> None:
    known, unknown = make_product(stock=5), str(uuid.uuid4())
    r = place(orders, buyer(), order_body((known["id"], 1), (unknown, 1)))
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/unknown-product")
    assert r.json()["product_ids"] == [unknown]


def test_mixed_currencies_are_422_and_the_stock_is_released(
    orders: ServiceProcess, products: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer
) -> None:
    eur, usd = make_product(stock=5, currency="EUR"), make_product(stock=5, currency="USD")
    r = place(orders, buyer(), order_body((eur["id"], 1), (usd["id"], 1)))
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/mixed-currencies")
    assert stock(products, eur["id"]) == (5, 5)
    assert stock(products, usd["id"]) == (5, 5)


@pytest.mark.parametrize(
    "card_kw",
    [
        {"number": "4242424242424241"},
        {"exp_year": 2021},
        {"exp_month": 13},
        {"exp_year": 31},
        {"cvc": "12"},
    ],
)
def test_an_invalid_card_is_422_before_any_stock_is_reserved(
    orders: ServiceProcess,
    products: ServiceProcess,
    pg: PostgresServer,
    make_product: MakeProduct,
    buyer: NewBuyer,
    card_kw: dict[str, Any],
) -> None:
    """The card is validated with the same code payments uses, before reserving: nothing happens."""
    p = make_product(stock=5)
    body = order_body((p["id"], 1))
    body["payment"]["card"].update(card_kw)
    before = pg.psql("SELECT count(*) FROM orders", db(orders))
    r = place(orders, buyer(), body)
    assert r.status_code == 422, r.text
    assert card_data_in(r.text) == []
    assert "4242424242424241" not in r.text
    assert stock(products, p["id"]) == (5, 5)
    assert pg.psql("SELECT count(*) FROM orders", db(orders)) == before


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(items=[]),
        lambda b: b["items"][0].update(quantity=0),
        lambda b: b["items"][0].update(quantity=1001),
        lambda b: b["items"][0].update(quantity=True),  # not 1
        lambda b: b["items"][0].update(quantity="1"),
        lambda b: b["items"][0].update(quantity=1.0),
        lambda b: b["items"].append(dict(b["items"][0])),  # the same product twice
        lambda b: b["items"][0].update(product_id="nope"),
        lambda b: b.update(coupon="FREE"),
        lambda b: b.pop("payment"),
        lambda b: b["payment"].update(token="x"),
    ],
)
def test_bad_bodies_are_422(
    orders: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer, mutate: Callable[[dict[str, Any]], None]
) -> None:
    body = order_body((make_product(stock=1)["id"], 1))
    mutate(body)
    r = place(orders, buyer(), body)
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/validation")


def test_the_idempotency_key_is_required_and_at_most_255_chars(
    orders: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer
) -> None:
    me = buyer()
    body = order_body((make_product(stock=1)["id"], 1))
    r = httpx.post(f"{orders.url}/api/v1/orders", json=body, headers=me.headers)
    assert r.status_code == 400
    assert r.json()["type"].endswith("/idempotency-key-required")
    assert place(orders, me, body, key="k" * 256).status_code == 422


def test_a_replayed_order_returns_the_first_response_and_has_no_second_effect(
    orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    keyring: KeyRing,
    make_product: MakeProduct,
    buyer: NewBuyer,
) -> None:
    """A client retrying after a lost response must not buy twice."""
    p = make_product(stock=5)
    me = buyer()
    body, key = order_body((p["id"], 2)), str(uuid.uuid4())
    first, second = place(orders, me, body, key), place(orders, me, body, key)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second.headers["idempotent-replayed"] == "true"
    assert stock(products, p["id"]) == (3, 3)
    assert len(payment_of(payments, keyring, first.json()["id"])) == 1
    listed = httpx.get(f"{orders.url}/api/v1/orders", headers=me.headers).json()["items"]
    assert [o["id"] for o in listed] == [first.json()["id"]]
    # Different body, same key → 422; the same key of another user is independent.
    other = place(orders, me, order_body((p["id"], 1)), key)
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-conflict")
    assert place(orders, buyer(), body, key).status_code == 201
    assert stock(products, p["id"]) == (1, 1)


def test_a_replayed_decline_returns_the_same_402(
    orders: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer
) -> None:
    me = buyer()
    body, key = order_body((make_product(stock=5)["id"], 1), number=DECLINED), str(uuid.uuid4())
    first, second = place(orders, me, body, key), place(orders, me, body, key)
    assert first.status_code == second.status_code == 402
    assert first.content == second.content


def test_concurrent_duplicates_place_one_order(
    orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    keyring: KeyRing,
    make_product: MakeProduct,
    buyer: NewBuyer,
) -> None:
    """Ten copies of one order at once (a double-click, a retrying proxy): one order, one charge."""
    p = make_product(stock=10)
    me = buyer()
    body, key = order_body((p["id"], 1)), str(uuid.uuid4())

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=orders.url, timeout=30, headers={**me.headers, "Idempotency-Key": key}
        ) as c:
            return await asyncio.gather(*(c.post("/api/v1/orders", json=body) for _ in range(10)))

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} <= {201, 409}
    for r in responses:
        if r.status_code == 409:
            assert r.json()["type"].endswith("/idempotency-in-flight")
    created = [r for r in responses if r.status_code == 201]
    assert created
    assert len({r.content for r in created}) == 1
    assert place(orders, me, body, key).content == created[0].content
    assert stock(products, p["id"]) == (9, 9)
    assert len(payment_of(payments, keyring, created[0].json()["id"])) == 1


def test_orders_list_is_own_newest_first_with_opaque_cursor(
    orders: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer
) -> None:
    p = make_product(stock=10)
    me, other = buyer(), buyer()
    mine = [place(orders, me, order_body((p["id"], 1))).json()["id"] for _ in range(3)]
    place(orders, other, order_body((p["id"], 1)))
    page1 = httpx.get(f"{orders.url}/api/v1/orders", params={"limit": 2}, headers=me.headers).json()
    assert [o["id"] for o in page1["items"]] == mine[::-1][:2]
    page2 = httpx.get(
        f"{orders.url}/api/v1/orders", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=me.headers
    ).json()
    assert [o["id"] for o in page2["items"]] == mine[:1]
    assert page2["next_cursor"] is None
    for params in ({"cursor": "!!!"}, {"cursor": "eyJ4IjogMX0"}, {"limit": 0}, {"limit": 101}, *CRAFTED_CURSORS):
        r = httpx.get(f"{orders.url}/api/v1/orders", params=params, headers=me.headers)
        assert r.status_code == 422, (params, r.text)
    assert httpx.get(f"{orders.url}/api/v1/orders").status_code == 401


def test_another_users_order_is_404_for_read_and_cancel(
    orders: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer, admin: dict[str, str]
) -> None:
    """User B cannot see or cancel A's order, nor learn that it exists."""
    a, b = buyer(), buyer()
    order = place(orders, a, order_body((make_product(stock=2)["id"], 1))).json()
    for method, path in (("GET", ""), ("POST", "/cancel")):
        r = httpx.request(method, f"{orders.url}/api/v1/orders/{order['id']}{path}", headers=b.headers)
        assert r.status_code == 404, r.text
        missing = httpx.request(method, f"{orders.url}/api/v1/orders/{uuid.uuid4()}{path}", headers=b.headers)
        assert missing.status_code == 404
        assert missing.json()["detail"] == r.json()["detail"]
    assert httpx.get(f"{orders.url}/api/v1/orders/{order['id']}", headers=admin).status_code == 200
    assert httpx.get(f"{orders.url}/api/v1/orders/{order['id']}", headers=a.headers).json()["status"] == "confirmed"


def test_cancel_refunds_in_full_and_returns_the_stock(
    orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    keyring: KeyRing,
    make_product: MakeProduct,
    buyer: NewBuyer,
    admin: dict[str, str],
) -> None:
    p = make_product(stock=4)
    me = buyer()
    order = place(orders, me, order_body((p["id"], 3))).json()
    assert stock(products, p["id"]) == (1, 1)
    r = httpx.post(f"{orders.url}/api/v1/orders/{order['id']}/cancel", headers=me.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert stock(products, p["id"]) == (4, 4)
    [payment] = payment_of(payments, keyring, order["id"])
    assert payment["refunded_cents"] == payment["amount_cents"] == order["total_cents"]
    again = httpx.post(f"{orders.url}/api/v1/orders/{order['id']}/cancel", headers=me.headers)
    assert again.status_code == 200
    assert payment_of(payments, keyring, order["id"])[0]["refunded_cents"] == order["total_cents"]
    # An admin may cancel anyone's order.
    other = place(orders, me, order_body((p["id"], 1))).json()
    assert httpx.post(f"{orders.url}/api/v1/orders/{other['id']}/cancel", headers=admin).status_code == 200
    # Only confirmed orders can be cancelled.
    declined = place(orders, me, order_body((p["id"], 1), number=DECLINED)).json()
    r = httpx.post(f"{orders.url}/api/v1/orders/{declined['order_id']}/cancel", headers=me.headers)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/order-state")


def test_cancel_after_a_partial_refund_refunds_the_rest(
    orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    pg: PostgresServer,
    keyring: KeyRing,
    make_product: MakeProduct,
    buyer: NewBuyer,
) -> None:
    """Cancelling promises the customer their money back: after part of the capture was refunded (a goodwill
    refund, say), the cancel refunds the remainder, once, and the ledger still balances."""
    p = make_product(stock=3, price_cents=1000)
    me = buyer()
    order = place(orders, me, order_body((p["id"], 3))).json()
    [payment] = payment_of(payments, keyring, order["id"])
    svc = {"authorization": f"Bearer {service_token(keyring, 'orders', 'payments')}"}
    partial = httpx.post(
        f"{payments.url}/internal/v1/payments/{payment['id']}/refunds",
        json={"amount_cents": 700},
        headers={**svc, "Idempotency-Key": f"goodwill-{uuid.uuid4()}"},
    )
    assert partial.status_code == 201, partial.text
    r = httpx.post(f"{orders.url}/api/v1/orders/{order['id']}/cancel", headers=me.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    [after] = payment_of(payments, keyring, order["id"])
    assert after["refunded_cents"] == after["amount_cents"] == 3000
    assert httpx.post(f"{orders.url}/api/v1/orders/{order['id']}/cancel", headers=me.headers).status_code == 200
    assert payment_of(payments, keyring, order["id"])[0]["refunded_cents"] == 3000
    assert stock(products, p["id"]) == (3, 3)
    assert ledger_problems(pg, db(payments)) == []


def test_orders_and_payments_are_never_stored_by_caches(
    orders: ServiceProcess, payments: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer
) -> None:
    """Orders and payments are personal data: a shared computer's browser cache or a proxy must not keep them
    (``Cache-Control: no-store`` on the order placed, read, listed and cancelled, and on the payment read)."""
    me = buyer()
    placed = place(orders, me, order_body((make_product(stock=2)["id"], 1)))
    assert placed.status_code == 201, placed.text
    order = placed.json()
    responses = [
        placed,
        httpx.get(f"{orders.url}/api/v1/orders", headers=me.headers),
        httpx.get(f"{orders.url}/api/v1/orders/{order['id']}", headers=me.headers),
        httpx.get(f"{payments.url}/api/v1/payments/{order['payment_id']}", headers=me.headers),
        httpx.post(f"{orders.url}/api/v1/orders/{order['id']}/cancel", headers=me.headers),
        httpx.get(f"{orders.url}/api/v1/orders/{uuid.uuid4()}", headers=me.headers),
    ]
    for r in responses:
        assert r.status_code in (200, 201, 404), r.text
        assert r.headers["cache-control"] == "no-store", r.request.url


def test_ship_is_admin_only_and_a_shipped_order_cannot_be_cancelled(
    orders: ServiceProcess, products: ServiceProcess, make_product: MakeProduct, buyer: NewBuyer, admin: dict[str, str]
) -> None:
    p = make_product(stock=4)
    me = buyer()
    order = place(orders, me, order_body((p["id"], 1))).json()
    url = f"{orders.url}/api/v1/orders/{order['id']}"
    assert httpx.post(f"{url}/ship", headers=me.headers).status_code == 403
    r = httpx.post(f"{url}/ship", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "shipped"
    assert httpx.post(f"{url}/ship", headers=admin).status_code == 200
    r = httpx.post(f"{url}/cancel", headers=me.headers)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/order-shipped")
    assert stock(products, p["id"]) == (3, 3)
    cancelled = place(orders, me, order_body((p["id"], 1))).json()
    httpx.post(f"{orders.url}/api/v1/orders/{cancelled['id']}/cancel", headers=me.headers)
    r = httpx.post(f"{orders.url}/api/v1/orders/{cancelled['id']}/ship", headers=admin)
    assert r.status_code == 409
    assert httpx.post(f"{orders.url}/api/v1/orders/{uuid.uuid4()}/ship", headers=admin).status_code == 404


def test_concurrent_cancel_and_ship_leave_one_winner(
    orders: ServiceProcess,
    products: ServiceProcess,
    payments: ServiceProcess,
    keyring: KeyRing,
    make_product: MakeProduct,
    buyer: NewBuyer,
    admin: dict[str, str],
) -> None:
    """Ship and cancel race: either shipped (no refund) or cancelled (refunded, stock back), never both."""
    p = make_product(stock=20)
    me = buyer()
    placed = [place(orders, me, order_body((p["id"], 1))).json() for _ in range(5)]

    async def race(order_id: str) -> tuple[int, int]:
        async with httpx.AsyncClient(base_url=orders.url, timeout=30) as c:
            cancel, ship = await asyncio.gather(
                c.post(f"/api/v1/orders/{order_id}/cancel", headers=me.headers),
                c.post(f"/api/v1/orders/{order_id}/ship", headers=admin),
            )
            return cancel.status_code, ship.status_code

    for order in placed:
        cancel_status, ship_status = asyncio.run(race(order["id"]))
        final = httpx.get(f"{orders.url}/api/v1/orders/{order['id']}", headers=me.headers).json()["status"]
        refunded = payment_of(payments, keyring, order["id"])[0]["refunded_cents"]
        if final == "shipped":
            assert (cancel_status, refunded) == (409, 0)
        else:
            assert final == "cancelled"
            assert ship_status == 409
            assert refunded == order["total_cents"]


def test_the_database_refuses_illegal_transitions(
    orders: ServiceProcess, pg: PostgresServer, make_product: MakeProduct, buyer: NewBuyer
) -> None:
    """Whatever the code does, the schema only allows the state machine's edges."""
    me = buyer()
    place(orders, me, order_body((make_product(stock=1)["id"], 2)))  # rejected
    name = db(orders)
    with pytest.raises(RuntimeError, match="illegal order transition rejected -> confirmed"):
        pg.psql(
            "UPDATE orders SET status = 'confirmed' WHERE id = (SELECT id FROM orders WHERE status = 'rejected' "
            "LIMIT 1)",
            name,
        )
    with pytest.raises(RuntimeError, match="illegal order transition"):
        pg.psql(
            "UPDATE orders SET status = 'pending' WHERE id = (SELECT id FROM orders WHERE status = 'confirmed' "
            "LIMIT 1)",
            name,
        )
    with pytest.raises(RuntimeError, match="starts as pending"):
        pg.psql(
            "INSERT INTO orders (id, user_id, status) VALUES (gen_random_uuid(), gen_random_uuid(), 'confirmed')", name
        )
    with pytest.raises(RuntimeError, match="never deleted"):
        pg.psql("DELETE FROM orders", name)


def test_bad_tokens_are_401(orders: ServiceProcess, keyring: KeyRing, make_product: MakeProduct) -> None:
    body = order_body((make_product(stock=1)["id"], 1))
    for name, token in bad_tokens(keyring, uuid.uuid4()).items():
        headers = {"authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
        assert httpx.post(f"{orders.url}/api/v1/orders", json=body, headers=headers).status_code == 401, name
        assert httpx.get(f"{orders.url}/api/v1/orders", headers=headers).status_code == 401, name


def test_metrics_and_logs_name_the_order(orders: ServiceProcess) -> None:
    """Every saga log line carries order_id, so one order's story can be pulled from the logs."""
    text = httpx.get(f"{orders.url}/metrics").text
    for status in ("confirmed", "rejected", "payment_failed", "cancelled", "shipped"):
        assert f'orders_total{{status="{status}"}}' in text
    lines = [json.loads(ln) for ln in orders.logfile.read_text().splitlines() if ln.startswith("{")]
    saga_lines = [ln for ln in lines if str(ln.get("event", "")).startswith(("saga_", "order_", "refund_"))]
    assert len(saga_lines) > 20
    assert all(ln.get("order_id") for ln in saga_lines)


def test_schemathesis_finds_no_5xx_or_schema_violation(orders: ServiceProcess, keyring: KeyRing) -> None:
    token = mint_token(keyring, uuid.uuid4(), roles=("customer", "admin"), lifetime=3600)
    result = schema.run(orders.url, token)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "ok: 7 operations" in result.stdout  # the 5 orders routes + /healthz + /readyz
