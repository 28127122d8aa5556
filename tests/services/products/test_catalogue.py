"""The public catalogue contract: shapes, status codes and every error path of /api/v1/products."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from services.deploy.keyring import KeyRing
from tests.services.products.conftest import mint_user_token

PRODUCT_FIELDS = {
    "id",
    "sku",
    "name",
    "description",
    "category",
    "price_cents",
    "currency",
    "stock_on_hand",
    "stock_available",
    "created_at",
    "updated_at",
}


def _problem(r: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["request_id"] == r.headers["x-request-id"]
    if kind:
        assert body["type"].endswith(f"/{kind}"), body
    return body


def _new_body(**fields: Any) -> dict[str, Any]:
    return {
        "sku": f"SKU-{uuid.uuid4().hex[:12]}",
        "name": "Desk",
        "category": "furniture",
        "price_cents": 12900,
        "currency": "EUR",
        **fields,
    }


def test_admin_creates_a_product_and_anyone_reads_it(api: httpx.Client, admin_headers: dict[str, str]) -> None:
    """The full product shape is the contract clients render: every field present, new stock 0."""
    body = _new_body(description="Oak, 120 cm")
    r = api.post("/api/v1/products", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == PRODUCT_FIELDS
    assert {k: created[k] for k in body} == body
    assert created["stock_on_hand"] == created["stock_available"] == 0
    assert r.headers["location"] == f"/api/v1/products/{created['id']}"
    assert datetime.fromisoformat(created["created_at"]).utcoffset() is not None
    got = api.get(f"/api/v1/products/{created['id']}")
    assert got.status_code == 200
    assert got.json() == created


def test_description_is_optional(api: httpx.Client, admin_headers: dict[str, str]) -> None:
    """The contract marks description optional; omitting it stores an empty text, not null."""
    r = api.post("/api/v1/products", json=_new_body(), headers=admin_headers)
    assert r.status_code == 201
    assert r.json()["description"] == ""


def test_writes_need_an_admin(
    api: httpx.Client, customer_headers: dict[str, str], keyring: KeyRing, make_product: Callable[..., dict[str, Any]]
) -> None:
    """Only admins change the catalogue: no token or a bad one is 401 (who are you?), a customer's valid
    token is 403 (you may not), and nothing changes either way."""
    p = make_product()
    expired = mint_user_token(keyring, ["admin"], exp=1, iat=0)
    wrong_aud = mint_user_token(keyring, ["admin"], aud="someone-else")
    calls = [
        ("POST", "/api/v1/products", _new_body()),
        ("PATCH", f"/api/v1/products/{p['id']}", {"name": "hacked"}),
        ("DELETE", f"/api/v1/products/{p['id']}", None),
        ("PUT", f"/api/v1/products/{p['id']}/stock", {"quantity": 5}),
    ]
    for method, path, body in calls:
        _problem(api.request(method, path, json=body), 401)
        for token in (expired, wrong_aud, "not-a-jwt"):
            _problem(api.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"}), 401)
        _problem(api.request(method, path, json=body, headers=customer_headers), 403)
    assert api.get(f"/api/v1/products/{p['id']}").json() == p


def test_duplicate_sku_is_409(
    api: httpx.Client, admin_headers: dict[str, str], make_product: Callable[..., dict[str, Any]]
) -> None:
    """A SKU identifies one live product (warehouses and feeds key on it), on create and on rename."""
    p = make_product()
    _problem(api.post("/api/v1/products", json=_new_body(sku=p["sku"]), headers=admin_headers), 409, "duplicate-sku")
    other = make_product()
    _problem(
        api.patch(f"/api/v1/products/{other['id']}", json={"sku": p["sku"]}, headers=admin_headers),
        409,
        "duplicate-sku",
    )


@pytest.mark.parametrize(
    "change",
    [
        {"sku": ""},
        {"sku": "has space"},
        {"sku": "x" * 65},
        {"name": ""},
        {"name": "   "},
        {"name": "a\x00b"},
        {"name": "x" * 201},
        {"description": "x" * 5001},
        {"category": ""},
        {"price_cents": 0},
        {"price_cents": -5},
        {"price_cents": "12"},
        {"price_cents": 1.5},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"unknown": 1},
    ],
)
def test_invalid_product_bodies_are_422(
    api: httpx.Client, admin_headers: dict[str, str], change: dict[str, Any]
) -> None:
    """Bad input is refused before it reaches the database, with the offending field's location."""
    body = _problem(api.post("/api/v1/products", json=_new_body(**change), headers=admin_headers), 422, "validation")
    assert body["errors"]


def test_missing_fields_and_non_json_are_422(api: httpx.Client, admin_headers: dict[str, str]) -> None:
    """Required fields are required; a body that is not JSON is the client's error, not a crash."""
    body = _new_body()
    del body["currency"]
    _problem(api.post("/api/v1/products", json=body, headers=admin_headers), 422)
    _problem(
        api.post(
            "/api/v1/products", content=b"{not json", headers={**admin_headers, "content-type": "application/json"}
        ),
        422,
    )


def test_get_unknown_or_malformed_id(api: httpx.Client) -> None:
    """Unknown ids are 404 problems; a path that is not a UUID is 422, never a 500 from the database."""
    _problem(api.get(f"/api/v1/products/{uuid.uuid4()}"), 404, "product-not-found")
    _problem(api.get("/api/v1/products/not-a-uuid"), 422)


def test_patch_changes_only_the_given_fields(
    api: httpx.Client, admin_headers: dict[str, str], make_product: Callable[..., dict[str, Any]]
) -> None:
    """PATCH is a partial update: absent fields keep their values, updated_at moves, created_at and
    stock do not; an empty patch changes nothing; null clears a description but is refused elsewhere."""
    p = make_product(stock=4, description="old")
    r = api.patch(f"/api/v1/products/{p['id']}", json={"price_cents": 500, "category": "sale"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched == {**p, "price_cents": 500, "category": "sale", "updated_at": patched["updated_at"]}
    assert datetime.fromisoformat(patched["updated_at"]) > datetime.fromisoformat(p["updated_at"])
    assert api.patch(f"/api/v1/products/{p['id']}", json={}, headers=admin_headers).json() == patched
    cleared = api.patch(f"/api/v1/products/{p['id']}", json={"description": None}, headers=admin_headers)
    assert cleared.json()["description"] == ""
    _problem(api.patch(f"/api/v1/products/{p['id']}", json={"name": None}, headers=admin_headers), 422)
    _problem(api.patch(f"/api/v1/products/{p['id']}", json={"stock_on_hand": 99}, headers=admin_headers), 422)
    _problem(api.patch(f"/api/v1/products/{uuid.uuid4()}", json={"name": "x"}, headers=admin_headers), 404)


def test_delete_removes_the_product_from_every_read(
    api: httpx.Client, admin_headers: dict[str, str], make_product: Callable[..., dict[str, Any]]
) -> None:
    """A deleted product is gone for clients (404, not listed), deleting twice is 404, and its SKU is
    free again for a new product."""
    category = f"del-{uuid.uuid4().hex[:8]}"
    p = make_product(category=category)
    r = api.delete(f"/api/v1/products/{p['id']}", headers=admin_headers)
    assert r.status_code == 204
    assert r.content == b""
    _problem(api.get(f"/api/v1/products/{p['id']}"), 404)
    assert api.get("/api/v1/products", params={"category": category}).json()["items"] == []
    _problem(api.delete(f"/api/v1/products/{p['id']}", headers=admin_headers), 404)
    _problem(api.put(f"/api/v1/products/{p['id']}/stock", json={"quantity": 1}, headers=admin_headers), 404)
    _problem(api.patch(f"/api/v1/products/{p['id']}", json={"name": "x"}, headers=admin_headers), 404)
    assert api.post("/api/v1/products", json=_new_body(sku=p["sku"]), headers=admin_headers).status_code == 201


def test_stock_is_set_but_never_below_reserved(
    api: httpx.Client,
    admin_headers: dict[str, str],
    orders_headers: dict[str, str],
    make_product: Callable[..., dict[str, Any]],
) -> None:
    """PUT stock sets on-hand (a stock count), but lowering it below what orders hold would make
    reservations unfulfillable: 409, and the stock stays as it was."""
    p = make_product(stock=10)
    assert p["stock_on_hand"] == p["stock_available"] == 10
    r = api.post(
        "/internal/v1/reservations",
        headers=orders_headers,
        json={"order_id": str(uuid.uuid4()), "items": [{"product_id": p["id"], "quantity": 6}]},
    )
    assert r.status_code == 201
    body = _problem(
        api.put(f"/api/v1/products/{p['id']}/stock", json={"quantity": 5}, headers=admin_headers),
        409,
        "stock-below-reserved",
    )
    assert body["reserved"] == 6
    r = api.put(f"/api/v1/products/{p['id']}/stock", json={"quantity": 6}, headers=admin_headers)
    assert r.status_code == 200
    assert (r.json()["stock_on_hand"], r.json()["stock_available"]) == (6, 0)
    for bad in ({"quantity": -1}, {"quantity": "many"}, {}, {"quantity": 1, "x": 1}):
        _problem(api.put(f"/api/v1/products/{p['id']}/stock", json=bad, headers=admin_headers), 422)
    _problem(api.put(f"/api/v1/products/{uuid.uuid4()}/stock", json={"quantity": 1}, headers=admin_headers), 404)


def test_list_pages_through_everything_once_in_a_stable_order(
    api: httpx.Client, make_product: Callable[..., dict[str, Any]]
) -> None:
    """Keyset pagination: following next_cursor visits every product exactly once, in creation order,
    and the last page says there is no next one."""
    category = f"page-{uuid.uuid4().hex[:8]}"
    made = [make_product(category=category)["id"] for _ in range(7)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"category": category, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = api.get("/api/v1/products", params=params)
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 3
        assert all(set(i) == PRODUCT_FIELDS for i in page["items"])
        seen.extend(i["id"] for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made


def _cursor_at(timestamp: str) -> dict[str, str]:
    doc = {"t": timestamp, "id": str(uuid.uuid4())}
    return {"cursor": base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()}


# Well-formed cursors whose timestamps leave the range a timestamptz parameter can carry once converted to UTC.
CRAFTED_CURSORS = (_cursor_at("0001-01-01T00:00:00+14:00"), _cursor_at("9999-12-31T23:59:59-14:00"))


def test_list_defaults_and_limits(api: httpx.Client, make_product: Callable[..., dict[str, Any]]) -> None:
    """limit defaults to 20 and must be 1..100; a cursor that was not issued by us is 422."""
    for _ in range(21):
        make_product()
    page = api.get("/api/v1/products").json()
    assert len(page["items"]) == 20
    assert page["next_cursor"]
    assert len(api.get("/api/v1/products", params={"limit": 100}).json()["items"]) <= 100
    for params in (
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"cursor": "garbage!"},
        {"cursor": "eyJ0IjogMX0"},
        {"min_price_cents": -1},
        *CRAFTED_CURSORS,
    ):
        _problem(api.get("/api/v1/products", params=params), 422)


def test_list_filters_by_category_and_price(api: httpx.Client, make_product: Callable[..., dict[str, Any]]) -> None:
    """Filters combine (AND) and bounds are inclusive; an empty range finds nothing rather than failing."""
    category = f"filter-{uuid.uuid4().hex[:8]}"
    cheap = make_product(category=category, price_cents=100)["id"]
    mid = make_product(category=category, price_cents=500)["id"]
    dear = make_product(category=category, price_cents=900)["id"]
    make_product(category="elsewhere", price_cents=500)

    def ids(**params: Any) -> list[str]:
        r = api.get("/api/v1/products", params={"category": category, **params})
        assert r.status_code == 200
        return [i["id"] for i in r.json()["items"]]

    assert ids() == [cheap, mid, dear]
    assert ids(min_price_cents=500) == [mid, dear]
    assert ids(max_price_cents=500) == [cheap, mid]
    assert ids(min_price_cents=101, max_price_cents=899) == [mid]
    assert ids(min_price_cents=900, max_price_cents=100) == []


def test_categories_list_every_category_with_its_live_products_and_forget_deleted_ones(
    api: httpx.Client, admin_headers: dict[str, str], make_product: Callable[..., dict[str, Any]]
) -> None:
    tag = uuid.uuid4().hex[:8]
    kept, emptied = f"a-{tag}", f"b-{tag}"
    make_product(category=kept)
    make_product(category=kept)
    gone = make_product(category=emptied)["id"]

    def counts() -> dict[str, int]:
        r = api.get("/api/v1/categories")
        assert r.status_code == 200
        names = [c["name"] for c in r.json()["items"]]
        assert names == sorted(names)
        return {c["name"]: c["products"] for c in r.json()["items"]}

    assert {k: v for k, v in counts().items() if tag in k} == {kept: 2, emptied: 1}
    assert api.delete(f"/api/v1/products/{gone}", headers=admin_headers).status_code == 204
    assert {k: v for k, v in counts().items() if tag in k} == {kept: 2}


def test_metrics_expose_reservation_outcomes_and_route_templates(
    api: httpx.Client, make_product: Callable[..., dict[str, Any]]
) -> None:
    """Operators alert on out_of_stock spikes: the business counter exists with every outcome label; and
    reads are counted under their route template (bounded cardinality), hot path included."""
    pid = make_product()["id"]
    assert api.get(f"/api/v1/products/{pid}").status_code == 200
    text = api.get("/metrics").text
    assert 'route="/api/v1/products/{product_id}",service="products",status="200"' in text
    assert pid not in text
    for outcome in ("reserved", "out_of_stock", "replayed", "committed", "released", "returned"):
        assert f'inventory_reservations_total{{outcome="{outcome}"}}' in text
