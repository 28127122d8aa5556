"""The indexer: follows the products change feed into the search index.

Exactly-once effect, from a cursor kept in the search database:

1. read the cursor (``indexer_cursor.last_seq``) and fetch the changes after it (no transaction is
   held open across the HTTP call);
2. in ONE transaction: lock the cursor row (``SELECT ... FOR UPDATE``), check it still holds the value
   the batch was fetched for (compare-and-set), apply the batch (upserts keyed by product_id, deletes
   remove the row), and advance the cursor to the batch's ``next_after``.

A crash before the commit loses nothing (the cursor did not move, the batch is fetched again); a crash
after it replays nothing (the cursor moved with the data). Replicas: the lock is taken per batch — the
cursor row lock serialises the apply transactions of all replicas, and the compare-and-set makes a
replica that fetched the same batch as the winner drop it and fetch again from the new cursor. So any
number of replicas may run the loop; at most one applies a given batch, and batches apply in feed
order. (A session-level advisory lock would make one replica the only poller, but needs a pinned
connection and failover handling; the per-batch row lock needs neither.)

Errors (products down, a malformed batch, a database error) are logged and counted, and the loop backs
off and retries; it never takes the app down, and /readyz does not depend on it (search keeps serving
what it has). Lag is visible as metrics: ``search_indexer_last_seq``, ``search_indexer_lag_seconds``,
``search_indexer_last_success_timestamp_seconds``, ``search_indexer_errors_total``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter, Gauge

from services.kit.context import request_id_var
from services.products.contract import Change
from services.search.feed import ChangeFeed

log = logging.getLogger(__name__)

LAST_SEQ = Gauge("search_indexer_last_seq", "Products change-feed position the search index has applied")
ERRORS = Counter("search_indexer_errors_total", "Indexer polls that failed (feed unreachable, bad batch, DB)")
APPLIED = Counter("search_indexer_changes_applied_total", "Change-feed entries applied", ["op"])
LAG = Gauge(
    "search_indexer_lag_seconds",
    "In the last applied batch: seconds from the newest product change to it being indexed",
)
LAST_SUCCESS = Gauge("search_indexer_last_success_timestamp_seconds", "Unix time of the last successful poll")

_UPSERT_SQL = """
INSERT INTO search_documents
    (product_id, sku, name, description, category, price_cents, currency, updated_at, source_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (product_id) DO UPDATE SET
    sku = EXCLUDED.sku, name = EXCLUDED.name, description = EXCLUDED.description,
    category = EXCLUDED.category, price_cents = EXCLUDED.price_cents, currency = EXCLUDED.currency,
    updated_at = EXCLUDED.updated_at, source_seq = EXCLUDED.source_seq, indexed_at = now()
WHERE search_documents.source_seq < EXCLUDED.source_seq
"""


@dataclass(frozen=True, slots=True)
class PollResult:
    fetched: int
    applied: bool
    last_seq: int


def _collapse(items: list[Change]) -> tuple[list[Change], list[uuid.UUID]]:
    """The net effect of a batch: per product only its last change counts (an upsert carries the whole
    product, a delete removes it), so a batch is one upsert statement set plus one delete."""
    last: dict[uuid.UUID, Change] = {}
    for change in items:
        last[change.product_id] = change
    upserts = [c for c in last.values() if c.op == "upsert"]
    deletes = [c.product_id for c in last.values() if c.op == "delete"]
    return upserts, deletes


async def read_cursor(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT last_seq FROM indexer_cursor"))


class Indexer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        feed: ChangeFeed,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        backoff_max: float = 2.0,
    ) -> None:
        self.pool = pool
        self.feed = feed
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.backoff_max = backoff_max
        self.failures = 0

    async def poll_once(self) -> PollResult:
        """Fetch one batch after the stored cursor and apply it atomically with the cursor move."""
        after = await read_cursor(self.pool)
        batch = await self.feed.changes(after, self.batch_size)
        if not batch.items:
            LAST_SEQ.set(after)
            return PollResult(0, False, after)
        upserts, deletes = _collapse(batch.items)
        async with self.pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval("SELECT last_seq FROM indexer_cursor FOR UPDATE")
            if current != after:
                # Another replica applied this batch meanwhile: drop ours, fetch again from its cursor.
                log.info(
                    "batch already applied elsewhere",
                    extra={"event": "indexer_batch_skipped", "after": after, "cursor": current},
                )
                return PollResult(len(batch.items), False, int(current))
            if upserts:
                await conn.executemany(
                    _UPSERT_SQL,
                    [
                        (
                            c.product_id,
                            p.sku,
                            p.name,
                            p.description or "",
                            p.category,
                            p.price_cents,
                            p.currency,
                            p.updated_at,
                            c.seq,
                        )
                        for c in upserts
                        if (p := c.product) is not None
                    ],
                )
            if deletes:
                await conn.execute("DELETE FROM search_documents WHERE product_id = ANY($1::uuid[])", deletes)
            await conn.execute("UPDATE indexer_cursor SET last_seq = $1, updated_at = now()", batch.next_after)
        APPLIED.labels("upsert").inc(len(upserts))
        APPLIED.labels("delete").inc(len(deletes))
        LAST_SEQ.set(batch.next_after)
        newest = max((c.product.updated_at for c in upserts if c.product is not None), default=None)
        lag = (datetime.now(UTC) - newest).total_seconds() if newest is not None else None
        if lag is not None:
            LAG.set(max(lag, 0.0))
        log.info(
            "change batch applied",
            extra={
                "event": "indexer_batch_applied",
                "from_seq": after,
                "to_seq": batch.next_after,
                "changes": len(batch.items),
                "upserts": len(upserts),
                "deletes": len(deletes),
                "lag_ms": round(lag * 1000, 1) if lag is not None else None,
            },
        )
        return PollResult(len(batch.items), True, batch.next_after)

    async def run(self) -> None:
        """Poll until cancelled: ``create_app`` runs this as a background loop and cancels it at shutdown
        (a cancelled apply transaction rolls back, so the cursor and the index stay consistent)."""
        log.info("indexer started", extra={"event": "indexer_started"})
        try:
            while True:
                await self._step()
        finally:
            log.info("indexer stopped", extra={"event": "indexer_stopped"})

    async def _step(self) -> None:
        """One poll, then the wait before the next: none after a full batch, longer after each failure."""
        # Each poll gets its own request ID: it is sent to products and appears in both services' logs.
        rid = request_id_var.set(f"search-indexer-{uuid.uuid4().hex[:16]}")
        try:
            result = await self.poll_once()
        except Exception as exc:
            self.failures += 1
            ERRORS.inc()
            # First failure, then every 30th: products being down for a minute is one story, not 30.
            if self.failures == 1 or self.failures % 30 == 0:
                log.warning(
                    "indexer poll failed; backing off",
                    extra={
                        "event": "indexer_error",
                        "error_type": type(exc).__name__,
                        "error": str(exc)[:300],
                        "consecutive_failures": self.failures,
                    },
                )
            delay = min(self.backoff_max, self.poll_interval * 2 ** min(self.failures, 16))
        else:
            if self.failures:
                log.info(
                    "indexer recovered", extra={"event": "indexer_recovered", "consecutive_failures": self.failures}
                )
            self.failures = 0
            LAST_SUCCESS.set(time.time())
            # A full batch (or a lost compare-and-set) means more is waiting: go again at once.
            delay = (
                0.0
                if result.fetched >= self.batch_size or (result.fetched and not result.applied)
                else self.poll_interval
            )
        finally:
            request_id_var.reset(rid)
        await asyncio.sleep(delay)
