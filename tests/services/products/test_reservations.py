"""Reservations: all lines or none, idempotent per order, a strict state machine, and stock that never goes
negative however many callers race (the database constraint has the last word)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.deploy.keyring import KeyRing
from services.kit import keys
from services.kit.auth import ServiceTokenIssuer
from services.runner.postgres import PostgresServer
from tests.services.products.conftest import service_headers
from tests.support.inprocess import InProcessService

RES = "/internal/v1/reservations"


def _stock(api: httpx.Client, product_id: str) -> tuple[int, int]:
    body = api.get(f"/api/v1/products/{product_id}").json()
    return body["stock_on_hand"], body["stock_available"]


def _reserve(api: httpx.Client, headers: dict[str, str], order_id: str, *lines: tuple[str, int]) -> httpx.Response:
    return api.post(
        RES, headers=headers, json={"order_id": order_id, "items": [{"product_id": p, "quantity": q} for p, q in lines]}
    )


def test_reservation_takes_all_lines_and_snapshots_prices(
    api: httpx.Client, orders_headers: dict[str, str], make_product: Callable[..., dict[str, Any]]
) -> None:
    """Orders price the order from the reservation, so each line carries the name, price and currency
    at reservation time, in the order requested, and stock_available drops by exactly the quantity."""
    a = make_product(stock=5, name="Alpha", price_cents=250, currency="EUR")
    b = make_product(stock=7, name="Beta", price_cents=1000, currency="EUR")
    order_id = str(uuid.uuid4())
    r = _reserve(api, orders_headers, order_id, (b["id"], 2), (a["id"], 5))
    assert r.status_code == 201, r.text
    assert r.json() == {
        "order_id": order_id,
        "status": "reserved",
        "items": [
            {"product_id": b["id"], "quantity": 2, "name": "Beta", "unit_price_cents": 1000, "currency": "EUR"},
            {"product_id": a["id"], "quantity": 5, "name": "Alpha", "unit_price_cents": 250, "currency": "EUR"},
        ],
    }
    assert _stock(api, a["id"]) == (5, 0)
    assert _stock(api, b["id"]) == (7, 5)
    got = api.get(f"{RES}/{order_id}", headers=orders_headers)
    assert got.status_code == 200
    assert got.json() == r.json()


def test_replay_returns_the_same_body_once_and_changes_nothing(
    api: httpx.Client, orders_headers: dict[str, str], make_product: Callable[..., dict[str, Any]]
) -> None:
    """The orders saga retries after timeouts: a replay must not reserve twice, and must answer 200 with
    the original body; the same order id with other items is a conflict, never a silent overwrite."""
    p = make_product(stock=10)
    order_id = str(uuid.uuid4())
    first = _reserve(api, orders_headers, order_id, (p["id"], 3))
    assert first.status_code == 201
    replay = _reserve(api, orders_headers, order_id, (p["id"], 3))
    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert _stock(api, p["id"]) == (10, 7)
    other = _reserve(api, orders_headers, order_id, (p["id"], 4))
    assert other.status_code == 409
    assert other.json()["type"].endswith("/reservation-conflict")
    assert _stock(api, p["id"]) == (10, 7)


def test_short_line_reserves_nothing_and_names_the_shortage(
    api: httpx.Client, orders_headers: dict[str, str], make_product: Callable[..., dict[str, Any]]
) -> None:
    """All or nothing: when one line is short, the lines that would fit stay untouched, and the problem
    says which product was short and by how much (orders shows it to the customer)."""
    plenty = make_product(stock=10)
    scarce = make_product(stock=1)
    order_id = str(uuid.uuid4())
    r = _reserve(api, orders_headers, order_id, (plenty["id"], 2), (scarce["id"], 2))
    assert r.status_code == 409
    body = r.json()
    assert body["type"].endswith("/out-of-stock")
    assert body["shortages"] == [{"product_id": scarce["id"], "requested": 2, "available": 1}]
    assert _stock(api, plenty["id"]) == (10, 10)
    assert _stock(api, scarce["id"]) == (1, 1)
    assert api.get(f"{RES}/{order_id}", headers=orders_headers).status_code == 404
    # Nothing was stored for the order: once stock arrives, the same order id may reserve.
    assert _reserve(api, orders_headers, order_id, (plenty["id"], 2)).status_code == 201


def test_unknown_or_deleted_products_are_404_with_their_ids(
    api: httpx.Client,
    orders_headers: dict[str, str],
    admin_headers: dict[str, str],
    make_product: Callable[..., dict[str, Any]],
) -> None:
    """A reservation naming a product that does not exist (or was deleted) must fail as a whole and say
    which ids are unknown, not reserve the rest."""
    live = make_product(stock=3)
    gone = make_product(stock=3)
    assert api.delete(f"/api/v1/products/{gone['id']}", headers=admin_headers).status_code == 204
    unknown = str(uuid.uuid4())
    r = _reserve(api, orders_headers, str(uuid.uuid4()), (live["id"], 1), (gone["id"], 1), (unknown, 1))
    assert r.status_code == 404
    assert r.json()["type"].endswith("/product-not-found")
    assert sorted(r.json()["product_ids"]) == sorted([gone["id"], unknown])
    assert _stock(api, live["id"]) == (3, 3)


@pytest.mark.parametrize(
    "body",
    [
        {"order_id": "not-a-uuid", "items": [{"product_id": str(uuid.uuid4()), "quantity": 1}]},
        {"order_id": str(uuid.uuid4()), "items": []},
        {"order_id": str(uuid.uuid4()), "items": [{"product_id": str(uuid.uuid4()), "quantity": 0}]},
        {"order_id": str(uuid.uuid4()), "items": [{"product_id": str(uuid.uuid4()), "quantity": 1001}]},
        {
            "order_id": str(uuid.uuid4()),
            "items": [
                {"product_id": "11111111-1111-1111-1111-111111111111", "quantity": 1},
                {"product_id": "11111111-1111-1111-1111-111111111111", "quantity": 2},
            ],
        },
        {"order_id": str(uuid.uuid4()), "items": [{"product_id": str(uuid.uuid4()), "quantity": 1}], "extra": 1},
        {
            "order_id": str(uuid.uuid4()),
            "items": [{"product_id": str(uuid.uuid4()), "quantity": 1} for _ in range(101)],
        },
    ],
)
def test_malformed_reservations_are_422(
    api: httpx.Client, orders_headers: dict[str, str], body: dict[str, Any]
) -> None:
    """Bad input is the caller's bug: 422 with the location, never a 5xx and never a partial reservation."""
    r = api.post(RES, headers=orders_headers, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"]


def test_commit_release_return_state_machine(
    api: httpx.Client, orders_headers: dict[str, str], make_product: Callable[..., dict[str, Any]]
) -> None:
    """Each transition moves stock exactly once: commit takes it off the shelf, release frees it, return
    puts committed stock back. Repeats are harmless (saga retries) and impossible moves are 409."""
    p = make_product(stock=10)
    committed_order, released_order = str(uuid.uuid4()), str(uuid.uuid4())
    assert _reserve(api, orders_headers, committed_order, (p["id"], 3)).status_code == 201
    assert _reserve(api, orders_headers, released_order, (p["id"], 2)).status_code == 201
    assert _stock(api, p["id"]) == (10, 5)

    for _ in range(2):  # commit, then its replay
        r = api.post(f"{RES}/{committed_order}/commit", headers=orders_headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "committed"
        assert _stock(api, p["id"]) == (7, 5)
    for _ in range(2):
        r = api.post(f"{RES}/{released_order}/release", headers=orders_headers)
        assert r.status_code == 200
        assert r.json()["status"] == "released"
        assert _stock(api, p["id"]) == (7, 7)

    for order_id, action, status in [
        (committed_order, "release", "committed"),
        (released_order, "commit", "released"),
        (released_order, "return", "released"),
    ]:
        r = api.post(f"{RES}/{order_id}/{action}", headers=orders_headers)
        assert r.status_code == 409, (action, r.text)
        assert r.json()["type"].endswith("/reservation-state")
        assert r.json()["reservation_status"] == status
    assert _stock(api, p["id"]) == (7, 7)

    for _ in range(2):
        r = api.post(f"{RES}/{committed_order}/return", headers=orders_headers)
        assert r.status_code == 200
        assert r.json()["status"] == "returned"
        assert _stock(api, p["id"]) == (10, 10)
    assert api.post(f"{RES}/{committed_order}/commit", headers=orders_headers).status_code == 409

    # A replay of the original reservation still answers with the reservation as it now stands.
    replay = _reserve(api, orders_headers, released_order, (p["id"], 2))
    assert replay.status_code == 200
    assert replay.json()["status"] == "released"
    assert _stock(api, p["id"]) == (10, 10)


def test_return_from_reserved_is_409_and_unknown_order_is_404(
    api: httpx.Client, orders_headers: dict[str, str], make_product: Callable[..., dict[str, Any]]
) -> None:
    """Returning stock that never left would create stock out of nothing."""
    p = make_product(stock=2)
    order_id = str(uuid.uuid4())
    assert _reserve(api, orders_headers, order_id, (p["id"], 1)).status_code == 201
    r = api.post(f"{RES}/{order_id}/return", headers=orders_headers)
    assert r.status_code == 409
    assert _stock(api, p["id"]) == (2, 1)
    missing = str(uuid.uuid4())
    for action in ("commit", "release", "return"):
        r = api.post(f"{RES}/{missing}/{action}", headers=orders_headers)
        assert r.status_code == 404
        assert r.json()["type"].endswith("/reservation-not-found")
    assert api.get(f"{RES}/{missing}", headers=orders_headers).status_code == 404


# A fixed id: parameters must be the same in every pytest-xdist worker, which collects on its own.
@pytest.mark.parametrize("path", [f"{RES}/{uuid.UUID(int=1)}", "/internal/v1/changes"])
def test_internal_routes_need_a_valid_service_token(
    api: httpx.Client, keyring: KeyRing, path: str, admin_headers: dict[str, str]
) -> None:
    """Internal routes are reachable only by services the catalog allows: no token, a user's (even an
    admin's) token, a token from a service that may not call products, a token signed with the wrong key,
    or one addressed to another service are all 401."""
    assert api.get(path).status_code == 401
    assert api.get(path, headers=admin_headers).status_code == 401
    payments = ServiceTokenIssuer("payments", keys.generate_private_pem()).token_for("products")
    assert api.get(path, headers={"Authorization": f"Bearer {payments}"}).status_code == 401
    forged = KeyRing.generate()  # the right name, the wrong key
    assert api.get(path, headers=service_headers(forged, "orders")).status_code == 401
    to_users = ServiceTokenIssuer("orders", keyring.service_keys["orders"]).token_for("users")
    r = api.get(path, headers={"Authorization": f"Bearer {to_users}"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


def test_each_internal_route_serves_only_its_callers(
    api: httpx.Client, orders_headers: dict[str, str], search_headers: dict[str, str]
) -> None:
    """Least privilege between services: search reads the feed but cannot reserve stock; orders reserves
    but has no business reading the feed."""
    body = {"order_id": str(uuid.uuid4()), "items": [{"product_id": str(uuid.uuid4()), "quantity": 1}]}
    assert api.post(RES, json=body, headers=search_headers).status_code == 403
    order_id = uuid.uuid4()
    assert api.get(f"{RES}/{order_id}", headers=search_headers).status_code == 403
    for action in ("commit", "release", "return"):
        assert api.post(f"{RES}/{order_id}/{action}", headers=search_headers).status_code == 403, action
    assert api.get("/internal/v1/changes", headers=orders_headers).status_code == 403
    assert api.get("/internal/v1/changes", headers=search_headers).status_code == 200


def test_hundred_concurrent_reservations_never_oversell(
    api: httpx.Client,
    products_app: InProcessService,
    orders_headers: dict[str, str],
    make_product: Callable[..., dict[str, Any]],
) -> None:
    """The core inventory promise: 100 orders racing for 30 units get exactly 30 reservations, the other
    70 a clean 409, and stock_available ends at 0, never below."""
    p = make_product(stock=30)

    async def race() -> list[int]:
        async with products_app.async_client(timeout=30.0) as client:

            async def one() -> int:
                r = await client.post(
                    RES,
                    headers=orders_headers,
                    json={"order_id": str(uuid.uuid4()), "items": [{"product_id": p["id"], "quantity": 1}]},
                )
                return r.status_code

            return list(await asyncio.gather(*(one() for _ in range(100))))

    statuses = asyncio.run(race())
    assert statuses.count(201) == 30
    assert statuses.count(409) == 70
    assert _stock(api, p["id"]) == (30, 0)


def test_database_refuses_an_oversell_even_without_the_service(
    pg: PostgresServer, products_db: str, make_product: Callable[..., dict[str, Any]]
) -> None:
    """Defence in depth: a buggy code path or a hand-written UPDATE must not be able to reserve more than
    is on hand or drive stock negative; the CHECK constraint refuses it."""
    pid = uuid.UUID(make_product(stock=2)["id"])  # a parsed UUID: safe to put in SQL text
    where = f"WHERE id = '{pid}'"
    for change in ("stock_reserved = 3", "stock_reserved = -1", "stock_on_hand = -1"):
        with pytest.raises(RuntimeError, match="stock_never_negative"):
            pg.psql(f"UPDATE products SET {change} {where}", products_db)  # noqa: S608
    assert pg.psql(f"SELECT stock_on_hand, stock_reserved FROM products {where}", products_db) == "2|0"  # noqa: S608


def test_multi_line_reservations_in_opposite_orders_do_not_deadlock(
    api: httpx.Client,
    products_app: InProcessService,
    orders_headers: dict[str, str],
    make_product: Callable[..., dict[str, Any]],
) -> None:
    """Two orders naming the same products in opposite orders are the classic deadlock (each holds one row
    and waits for the other). Locks are taken in product-id order, so all of them complete: every
    request gets 201 or a clean 409, none a 5xx, and no reservation is partial."""
    a, b, c = (make_product(stock=40) for _ in range(3))
    orders: list[tuple[str, list[tuple[str, int]]]] = []
    for i in range(60):
        lines = [(a["id"], 1), (b["id"], 1), (c["id"], 1)]
        orders.append((str(uuid.uuid4()), lines if i % 2 else lines[::-1]))

    async def race() -> list[int]:
        async with products_app.async_client(timeout=30.0) as client:

            async def one(order_id: str, lines: list[tuple[str, int]]) -> int:
                r = await client.post(
                    RES,
                    headers=orders_headers,
                    json={"order_id": order_id, "items": [{"product_id": pid, "quantity": q} for pid, q in lines]},
                )
                return r.status_code

            return list(await asyncio.gather(*(one(o, lines) for o, lines in orders)))

    statuses = asyncio.run(race())
    assert set(statuses) <= {201, 409}, statuses
    assert statuses.count(201) == 40
    for product in (a, b, c):
        assert _stock(api, product["id"]) == (40, 0)
    # No partial reservation: every successful order holds all three lines.
    for order_id, _ in orders:
        r = api.get(f"{RES}/{order_id}", headers=orders_headers)
        assert r.status_code in (200, 404)
        if r.status_code == 200:
            assert len(r.json()["items"]) == 3


def test_concurrent_replays_of_one_order_reserve_once(
    api: httpx.Client,
    products_app: InProcessService,
    orders_headers: dict[str, str],
    make_product: Callable[..., dict[str, Any]],
) -> None:
    """The saga may retry while its first attempt is still running: twenty simultaneous requests for one
    order id reserve once (one 201, the rest 200 with the same body), never twenty times."""
    p = make_product(stock=100)
    body = {"order_id": str(uuid.uuid4()), "items": [{"product_id": p["id"], "quantity": 3}]}

    async def race() -> list[httpx.Response]:
        async with products_app.async_client(timeout=30.0) as client:
            return list(await asyncio.gather(*(client.post(RES, json=body, headers=orders_headers) for _ in range(20))))

    responses = asyncio.run(race())
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert all(r.json() == responses[0].json() for r in responses)
    assert _stock(api, p["id"]) == (100, 97)


def test_reservations_of_a_deleted_product_still_settle(
    api: httpx.Client,
    orders_headers: dict[str, str],
    admin_headers: dict[str, str],
    make_product: Callable[..., dict[str, Any]],
    pg: PostgresServer,
    products_db: str,
) -> None:
    """Deleting a product must not strand orders already holding it: their reservations still commit and
    release, and the stock rows stay consistent (soft delete keeps the row)."""
    p = make_product(stock=5)
    committed, released = str(uuid.uuid4()), str(uuid.uuid4())
    assert _reserve(api, orders_headers, committed, (p["id"], 2)).status_code == 201
    assert _reserve(api, orders_headers, released, (p["id"], 1)).status_code == 201
    assert api.delete(f"/api/v1/products/{p['id']}", headers=admin_headers).status_code == 204
    assert api.post(f"{RES}/{committed}/commit", headers=orders_headers).status_code == 200
    assert api.post(f"{RES}/{released}/release", headers=orders_headers).status_code == 200
    pid = uuid.UUID(p["id"])
    assert (
        pg.psql(
            f"SELECT stock_on_hand, stock_reserved FROM products WHERE id = '{pid}'",  # noqa: S608
            products_db,
        )
        == "3|0"
    )
