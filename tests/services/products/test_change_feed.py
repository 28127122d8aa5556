"""The change feed search follows: every catalogue change exactly once, in commit order, with no gap a
reader could skip, even while many admins write at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from tests.support.inprocess import InProcessService

FEED = "/internal/v1/changes"


def _all_changes(api: httpx.Client, headers: dict[str, str], after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = api.get(FEED, params={"after": after, "limit": limit}, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body["items"])
        if not body["items"]:
            assert body["next_after"] == after
            return items
        assert body["next_after"] == body["items"][-1]["seq"]
        after = body["next_after"]


def _head(api: httpx.Client, headers: dict[str, str]) -> int:
    changes = _all_changes(api, headers)
    return changes[-1]["seq"] if changes else 0


def test_create_update_delete_each_appear_once_with_search_fields(
    api: httpx.Client,
    search_headers: dict[str, str],
    admin_headers: dict[str, str],
    make_product: Callable[..., dict[str, Any]],
) -> None:
    """Search indexes exactly what the feed says: an upsert carries the product's searchable fields as
    committed, a delete carries none; stock changes are not catalogue changes and add nothing."""
    start = _head(api, search_headers)
    p = make_product(name="Feed lamp", description="warm light", category="lighting", price_cents=4200)
    r = api.patch(f"/api/v1/products/{p['id']}", json={"name": "Feed lamp XL"}, headers=admin_headers)
    assert r.status_code == 200
    patched = r.json()
    assert api.put(f"/api/v1/products/{p['id']}/stock", json={"quantity": 9}, headers=admin_headers).status_code == 200
    assert api.delete(f"/api/v1/products/{p['id']}", headers=admin_headers).status_code == 204

    mine = [c for c in _all_changes(api, search_headers, start) if c["product_id"] == p["id"]]
    assert [c["op"] for c in mine] == ["upsert", "upsert", "delete"]
    assert mine[0]["product"] == {
        k: p[k] for k in ("id", "sku", "name", "description", "category", "price_cents", "currency")
    } | {"updated_at": mine[0]["product"]["updated_at"]}
    assert mine[1]["product"]["name"] == "Feed lamp XL"
    assert datetime.fromisoformat(mine[1]["product"]["updated_at"]) == datetime.fromisoformat(patched["updated_at"])
    assert mine[2]["product"] is None
    assert mine[0]["seq"] < mine[1]["seq"] < mine[2]["seq"]


def test_failed_writes_leave_no_trace_in_the_feed(
    api: httpx.Client,
    search_headers: dict[str, str],
    admin_headers: dict[str, str],
    make_product: Callable[..., dict[str, Any]],
) -> None:
    """The outbox row is written in the product's transaction: a write that fails (duplicate sku, unknown
    product) must not announce a change that never happened."""
    p = make_product()
    start = _head(api, search_headers)
    dup = {"sku": p["sku"], "name": "x", "category": "c", "price_cents": 1, "currency": "EUR"}
    assert api.post("/api/v1/products", json=dup, headers=admin_headers).status_code == 409
    assert api.patch(f"/api/v1/products/{uuid.uuid4()}", json={"name": "x"}, headers=admin_headers).status_code == 404
    assert api.delete(f"/api/v1/products/{uuid.uuid4()}", headers=admin_headers).status_code == 404
    assert _all_changes(api, search_headers, start) == []


def test_concurrent_writers_produce_a_gapless_feed_in_commit_order(
    api: httpx.Client, products_app: InProcessService, search_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    """With many admins writing at once and a reader polling meanwhile, the reader must see every change
    exactly once: seq numbers are contiguous, each product's changes come in the order they were made,
    and seq order matches the time each change was made (commit order), so a cursor never skips a row."""
    start = _head(api, search_headers)
    n_products, n_patches = 20, 4
    polled: list[dict[str, Any]] = []

    async def scenario() -> tuple[list[str], int]:
        async with products_app.async_client(timeout=30.0) as client:
            done = asyncio.Event()

            async def reader() -> None:
                after = start
                while True:
                    finished = done.is_set()
                    r = await client.get(FEED, params={"after": after, "limit": 7}, headers=search_headers)
                    assert r.status_code == 200
                    polled.extend(r.json()["items"])
                    after = r.json()["next_after"]
                    if finished and not r.json()["items"]:
                        return
                    await asyncio.sleep(0.005)

            async def writer(i: int) -> str:
                r = await client.post(
                    "/api/v1/products",
                    headers=admin_headers,
                    json={
                        "sku": f"FEED-{uuid.uuid4().hex[:10]}",
                        "name": f"p{i} v0",
                        "category": "feed",
                        "price_cents": 100 + i,
                        "currency": "EUR",
                    },
                )
                assert r.status_code == 201, r.text
                pid = str(r.json()["id"])
                for v in range(1, n_patches + 1):
                    r = await client.patch(
                        f"/api/v1/products/{pid}", json={"name": f"p{i} v{v}"}, headers=admin_headers
                    )
                    assert r.status_code == 200, r.text
                if i % 2:
                    assert (await client.delete(f"/api/v1/products/{pid}", headers=admin_headers)).status_code == 204
                return pid

            reading = asyncio.create_task(reader())
            pids = list(await asyncio.gather(*(writer(i) for i in range(n_products))))
            done.set()
            await reading
            return pids, n_products * (1 + n_patches) + n_products // 2

    pids, expected = asyncio.run(scenario())
    feed = _all_changes(api, search_headers, start)
    assert len(feed) == expected
    assert [c["seq"] for c in feed] == list(range(start + 1, start + expected + 1))
    assert polled == feed  # the concurrent reader saw exactly the same rows, none skipped or repeated
    for i, pid in enumerate(pids):
        mine = [c for c in feed if c["product_id"] == pid]
        names = [c["product"]["name"] for c in mine if c["op"] == "upsert"]
        assert names == [f"p{i} v{v}" for v in range(n_patches + 1)]
        assert [c["op"] for c in mine][-1] == ("delete" if i % 2 else "upsert")
    stamps = [datetime.fromisoformat(c["product"]["updated_at"]) for c in feed if c["product"]]
    assert stamps == sorted(stamps)


def test_feed_parameters_are_validated(api: httpx.Client, search_headers: dict[str, str]) -> None:
    """A bad cursor or page size is the caller's bug: 422, not a silent default or a 5xx."""
    for params in ({"after": -1}, {"after": "x"}, {"limit": 0}, {"limit": 1001}):
        r = api.get(FEED, params=params, headers=search_headers)
        assert r.status_code == 422, params
