"""The indexer against a real search database and an in-memory change feed (the agreed feed semantics).

The end-to-end freshness and restart tests against the real products service are in test_api.py; these
pin down the exactly-once mechanics that are hard to provoke through processes: atomic batches, the
compare-and-set between replicas, the stored cursor, back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid

import asyncpg
from prometheus_client import REGISTRY

from services.products.contract import Change, ChangePage, FeedProduct
from services.search.indexer import Indexer, PollResult, read_cursor
from tests.services.search.conftest import FakeFeed, open_pool, product


async def _stop(task: asyncio.Task[None]) -> None:
    """What the kit does to a background loop at shutdown: cancel it and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _rows(pool: asyncpg.Pool) -> dict[uuid.UUID, str]:
    return {r["product_id"]: r["name"] for r in await pool.fetch("SELECT product_id, name FROM search_documents")}


def test_a_batch_and_the_cursor_move_together(search_db: str) -> None:
    """Upserts land keyed by product id, deletes remove the row, and the cursor ends at next_after: the
    index and the position in the feed are one state, so a restart resumes exactly there."""
    feed = FakeFeed()
    keep, gone = product("Laptop Pro"), product("Old Mouse")
    feed.upsert(keep)
    feed.upsert(gone)
    feed.delete(gone.id)

    async def run() -> tuple[PollResult, dict[uuid.UUID, str], int]:
        async with open_pool(search_db) as pool:
            result = await Indexer(pool, feed).poll_once()
            return result, await _rows(pool), await read_cursor(pool)

    result, rows, cursor = asyncio.run(run())
    assert result == PollResult(fetched=3, applied=True, last_seq=3)
    assert rows == {keep.id: "Laptop Pro"}
    assert cursor == 3


def test_only_the_last_change_per_product_in_a_batch_counts(search_db: str) -> None:
    """A batch may hold several changes to one product (created, renamed, deleted); the index must end
    in the state of the last one, whatever the order of statements inside the transaction."""
    feed = FakeFeed()
    renamed, recreated, short_lived = product("Desk Lamp"), product("Chair"), product("Ephemeral")
    feed.upsert(renamed)
    feed.upsert(recreated)
    feed.upsert(short_lived)
    feed.upsert(renamed.model_copy(update={"name": "Desk Lamp LED"}))
    feed.delete(recreated.id)
    feed.upsert(recreated.model_copy(update={"name": "Chair v2"}))
    feed.delete(short_lived.id)

    async def run() -> dict[uuid.UUID, str]:
        async with open_pool(search_db) as pool:
            await Indexer(pool, feed).poll_once()
            return await _rows(pool)

    assert asyncio.run(run()) == {renamed.id: "Desk Lamp LED", recreated.id: "Chair v2"}


def test_a_batch_that_fails_midway_changes_nothing(search_db: str) -> None:
    """If applying a batch fails part-way (here the database rejects the second row), neither the rows
    already written nor the cursor may survive: otherwise a retry would skip or half-apply updates."""
    feed = FakeFeed()
    feed.upsert(product("Good Product"))
    bad = FeedProduct.model_construct(**{**product("Bad Price").model_dump(), "price_cents": -1})
    feed.items.append(Change.model_construct(seq=2, product_id=bad.id, op="upsert", product=bad))

    async def run() -> tuple[str, dict[uuid.UUID, str], int]:
        async with open_pool(search_db) as pool:
            try:
                await Indexer(pool, feed).poll_once()
            except asyncpg.CheckViolationError as exc:
                error = type(exc).__name__
            else:
                error = "none"
            return error, await _rows(pool), await read_cursor(pool)

    error, rows, cursor = asyncio.run(run())
    assert error == "CheckViolationError"
    assert rows == {}
    assert cursor == 0


def test_a_restarted_indexer_resumes_from_the_stored_cursor(search_db: str) -> None:
    """After a restart (a new process, a new pool) the indexer asks the feed for what comes after the
    stored cursor, not from the beginning: nothing is applied twice and nothing is skipped."""
    feed = FakeFeed()
    products = [product(f"Item {i}") for i in range(7)]
    for p in products[:5]:
        feed.upsert(p)
    asked: list[int] = []

    class Recording(FakeFeed):
        async def changes(self, after: int, limit: int) -> ChangePage:
            asked.append(after)
            return await feed.changes(after, limit)

    async def first_life() -> None:
        async with open_pool(search_db) as pool:
            indexer = Indexer(pool, Recording(), batch_size=2)
            while (await indexer.poll_once()).fetched:
                pass

    async def second_life() -> tuple[dict[uuid.UUID, str], int]:
        async with open_pool(search_db) as pool:
            indexer = Indexer(pool, Recording(), batch_size=2)
            while (await indexer.poll_once()).fetched:
                pass
            return await _rows(pool), await read_cursor(pool)

    asyncio.run(first_life())
    assert asked == [0, 2, 4, 5]
    asked.clear()
    for p in products[5:]:
        feed.upsert(p)
    feed.delete(products[0].id)
    rows, cursor = asyncio.run(second_life())
    assert asked[0] == 5
    assert cursor == 8
    assert rows == {p.id: p.name for p in products[1:]}


def test_two_replicas_never_apply_the_same_batch(search_db: str) -> None:
    """Two replicas that fetched the same batch race to apply it: the cursor row lock plus the
    compare-and-set lets exactly one win; the other drops its copy and continues from the new cursor."""
    feed = FakeFeed()
    for i in range(5):
        feed.upsert(product(f"Thing {i}"))

    async def run() -> tuple[list[PollResult], int, int]:
        barrier = asyncio.Barrier(2)

        class Synchronised(FakeFeed):
            async def changes(self, after: int, limit: int) -> ChangePage:
                batch = await feed.changes(after, limit)
                await barrier.wait()  # both replicas hold the same batch before either applies it
                return batch

        async with open_pool(search_db) as pool_a, open_pool(search_db) as pool_b:
            a, b = Indexer(pool_a, Synchronised()), Indexer(pool_b, Synchronised())
            results = list(await asyncio.gather(a.poll_once(), b.poll_once()))
            count = await pool_a.fetchval("SELECT count(*) FROM search_documents")
            return results, count, await read_cursor(pool_a)

    results, count, cursor = asyncio.run(run())
    assert sorted(r.applied for r in results) == [False, True]
    assert all(r.last_seq == 5 for r in results)
    assert count == 5
    assert cursor == 5


def test_the_loop_backs_off_on_feed_errors_counts_them_and_recovers(search_db: str) -> None:
    """Products being down must not crash search or spin: the loop counts the failures (metric), waits
    longer each time, and catches up on its own once the feed answers again."""
    feed = FakeFeed()
    feed.upsert(product("Recovered Product"))
    feed.fail_next = 3
    before = REGISTRY.get_sample_value("search_indexer_errors_total") or 0.0

    async def run() -> tuple[int, float]:
        async with open_pool(search_db) as pool:
            task = asyncio.create_task(Indexer(pool, feed, poll_interval=0.01, backoff_max=0.05).run())
            deadline = time.monotonic() + 5
            while await read_cursor(pool) < 1 and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the DB
                await asyncio.sleep(0.01)
            started = time.monotonic()
            await _stop(task)
            return await read_cursor(pool), time.monotonic() - started

    cursor, stop_s = asyncio.run(run())
    after = REGISTRY.get_sample_value("search_indexer_errors_total") or 0.0
    assert cursor == 1
    assert after - before == 3
    assert REGISTRY.get_sample_value("search_indexer_last_seq") == 1
    assert stop_s < 1.0


def test_an_idle_indexer_polls_often_enough_for_two_second_freshness(search_db: str) -> None:
    """With nothing to do the loop still asks the feed several times a second (the contract: changes
    are searchable within 2 s), and a full batch is followed at once by the next request instead of an
    idle wait (a backlog drains at full speed)."""
    feed = FakeFeed()
    for i in range(5):
        feed.upsert(product(f"Batch {i}"))
    calls: list[tuple[float, int]] = []  # (time of the request, changes it returned)

    class Timed(FakeFeed):
        async def changes(self, after: int, limit: int) -> ChangePage:
            batch = await feed.changes(after, limit)
            calls.append((time.monotonic(), len(batch.items)))
            return batch

    async def run() -> None:
        async with open_pool(search_db) as pool:
            task = asyncio.create_task(Indexer(pool, Timed(), batch_size=1, poll_interval=0.4).run())
            await asyncio.sleep(2.0)
            await _stop(task)

    asyncio.run(run())
    after_full = [b[0] - a[0] for a, b in itertools.pairwise(calls) if a[1] == 1]
    after_idle = [b[0] - a[0] for a, b in itertools.pairwise(calls) if a[1] == 0]
    assert [n for _, n in calls[:6]] == [1, 1, 1, 1, 1, 0]
    assert max(after_full) < 0.2  # no idle wait after a full batch (each gap is one apply transaction)
    assert after_idle
    assert all(0.38 <= gap < 1.0 for gap in after_idle), after_idle  # the idle interval, not a busy loop
