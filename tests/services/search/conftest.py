"""Search test fixtures: a fresh, migrated search database for in-process tests (real PostgreSQL), and a
tiny in-memory change feed with the agreed ``/internal/v1/changes`` semantics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest

from services.kit import migrate
from services.runner.postgres import PostgresServer
from services.search.feed import Change, ChangeBatch, FeedError, FeedProduct
from tests.support.procs import ROOT

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


def product(name: str, *, description: str = "", category: str = "misc", price_cents: int = 1000,
            product_id: uuid.UUID | None = None) -> FeedProduct:
    pid = product_id or uuid.uuid4()
    return FeedProduct(id=pid, sku=f"SKU-{pid.hex[:8]}", name=name, description=description, category=category,
                       price_cents=price_cents, currency="EUR", updated_at=datetime.now(UTC))


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

    async def changes(self, after: int, limit: int) -> ChangeBatch:
        self.calls += 1
        if self.on_read is not None:
            self.on_read()
        if self.fail_next:
            self.fail_next -= 1
            raise FeedError("products answered 503 to GET /internal/v1/changes")
        page = [c for c in self.items if c.seq > after][:limit]
        return ChangeBatch(items=page, next_after=page[-1].seq if page else after)

    async def aclose(self) -> None:
        self.closed = True
