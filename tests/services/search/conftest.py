"""Search test fixtures: a fresh, migrated search database for in-process tests (real PostgreSQL), and a
tiny in-memory change feed with the agreed ``/internal/v1/changes`` semantics."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from services.kit import migrate
from services.products.contract import Change, ChangePage, FeedProduct
from services.runner.postgres import PostgresServer
from services.search.feed import FeedError
from tests.support.procs import ROOT, ServiceProcess
from tests.support.stack import TestStack

# Not imported from services.search.main: importing it builds the app (and reconfigures logging).
MIGRATIONS = ROOT / "services" / "search" / "migrations"


def fresh_search_db(pg: PostgresServer) -> str:
    name = f"search_unit_{uuid.uuid4().hex[:8]}"
    pg.psql(f'CREATE DATABASE "{name}"')
    url = pg.url(name)

    async def _migrate() -> None:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:
            await migrate.apply(pool, MIGRATIONS)
        finally:
            await pool.close()

    asyncio.run(_migrate())
    return url


@pytest.fixture
def search_db(pg: PostgresServer) -> str:
    """A migrated search database of this test's own."""
    return fresh_search_db(pg)


@asynccontextmanager
async def open_pool(url: str, size: int = 4) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=size)
    try:
        yield pool
    finally:
        await pool.close()


def product(
    name: str,
    *,
    description: str = "",
    category: str = "misc",
    price_cents: int = 1000,
    product_id: uuid.UUID | None = None,
) -> FeedProduct:
    pid = product_id or uuid.uuid4()
    return FeedProduct(
        id=pid,
        sku=f"SKU-{pid.hex[:8]}",
        name=name,
        description=description,
        category=category,
        price_cents=price_cents,
        currency="EUR",
        updated_at=datetime.now(UTC),
    )


class FakeFeed:
    """The products change feed in memory: strictly increasing seq, ``after``/``limit`` paging.

    ``fail_next`` makes the next N reads fail as if products were down; ``calls`` counts reads.
    """

    def __init__(self) -> None:
        self.items: list[Change] = []
        self.fail_next = 0
        self.calls = 0
        self.closed = False
        self.on_read: Callable[[], None] | None = None

    def upsert(self, p: FeedProduct) -> Change:
        change = Change(seq=len(self.items) + 1, product_id=p.id, op="upsert", product=p)
        self.items.append(change)
        return change

    def delete(self, product_id: uuid.UUID) -> Change:
        change = Change(seq=len(self.items) + 1, product_id=product_id, op="delete", product=None)
        self.items.append(change)
        return change

    async def changes(self, after: int, limit: int) -> ChangePage:
        self.calls += 1
        if self.on_read is not None:
            self.on_read()
        if self.fail_next:
            self.fail_next -= 1
            raise FeedError("products answered 503 to GET /internal/v1/changes")
        page = [c for c in self.items if c.seq > after][:limit]
        return ChangePage(items=page, next_after=page[-1].seq if page else after)

    async def aclose(self) -> None:
        self.closed = True


# --- real services (integration) --------------------------------------------------------------------


@pytest.fixture(scope="session")
def search(stack: TestStack, products: ServiceProcess) -> ServiceProcess:
    """The search service, started after products (the shared session fixture in tests/conftest.py) so
    its SERVICE_URLS point at the real change feed."""
    return stack.running.get("search") or stack.start("search")


class Catalogue:
    """Admin writes through the products public API (what a real catalogue change looks like)."""

    def __init__(self, products_url: str, admin_token: str) -> None:
        self.client = httpx.Client(
            base_url=products_url, timeout=10.0, headers={"authorization": f"Bearer {admin_token}"}
        )

    def create(
        self, name: str, *, description: str = "", category: str = "misc", price_cents: int = 1999
    ) -> dict[str, Any]:
        body = {
            "sku": f"SKU-{uuid.uuid4().hex[:12]}",
            "name": name,
            "description": description,
            "category": category,
            "price_cents": price_cents,
            "currency": "EUR",
        }
        r = self.client.post("/api/v1/products", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def patch(self, product_id: str, **fields: Any) -> dict[str, Any]:
        r = self.client.patch(f"/api/v1/products/{product_id}", json=fields)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def delete(self, product_id: str) -> None:
        r = self.client.delete(f"/api/v1/products/{product_id}")
        assert r.status_code == 204, r.text


@pytest.fixture(scope="session")
def catalogue(products: ServiceProcess, admin_token: str) -> Iterator[Catalogue]:
    c = Catalogue(products.url, admin_token)
    yield c
    c.client.close()


def unique_word() -> str:
    """A word no other product has (letters only, so tokenising and stemming leave it whole)."""
    return "zq" + "".join(random.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))


def search_ids(search_url: str, q: str, **params: Any) -> list[str]:
    r = httpx.get(f"{search_url}/api/v1/search", params={"q": q, **params}, timeout=5.0)
    assert r.status_code == 200, r.text
    return [item["product_id"] for item in r.json()["items"]]


def wait_for(condition: Callable[[], bool], *, within: float, started: float | None = None) -> float:
    """Poll ``condition`` until it holds; return the seconds it took (from ``started``), or fail after
    ``within`` seconds with the elapsed time in the message."""
    started = time.monotonic() if started is None else started
    deadline = started + within
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        time.sleep(0.02)


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]
