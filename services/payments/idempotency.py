"""Idempotency keys with Stripe's semantics, stored in PostgreSQL.

1. :func:`claim` (the kit's decision, ``services.kit.idempotency.claim``) inserts ``(caller, key,
   request_hash, claim)`` in its own transaction. Winning the insert means this request owns the key.
2. The effect and the final response are written in ONE transaction; :func:`complete` is part of it and
   only succeeds while this request still holds the claim, so a taken-over claim rolls the effect back.
3. A later request with the key gets the stored response (replay), 422 ``idempotency-conflict`` when its
   body differs, or 409 ``idempotency-in-flight`` while the first is still running.
4. :func:`release` deletes an unfinished claim (an unexpected error): the client may retry.

A claim left behind by a crashed process is taken over after ``stale_s``; since the effect is atomic
with the response, nothing half-done stands behind such a claim.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.kit import idempotency
from services.kit.idempotency import Stored

# A claim is named by its caller, key and token: a request whose stale claim was taken over no longer
# matches, so its complete() finds nothing and its effect rolls back.
KEYS = idempotency.KeyTable(handle=("caller", "key", "claim"))


@dataclass(frozen=True)
class Claim:
    caller: str
    key: str
    token: uuid.UUID

    @property
    def handle(self) -> tuple[str, str, uuid.UUID]:
        return self.caller, self.key, self.token


async def claim(pool: asyncpg.Pool, caller: str, key: str, req_hash: str, stale_s: float) -> Claim | Stored:
    """Own the key (a :class:`Claim`) or get the stored first response (a :class:`Stored`)."""
    token = uuid.uuid4()

    async def insert() -> Claim | None:
        inserted = await pool.fetchval(
            """INSERT INTO idempotency_keys (caller, key, request_hash, claim) VALUES ($1, $2, $3, $4)
               ON CONFLICT DO NOTHING RETURNING true""",
            caller,
            key,
            req_hash,
            token,
        )
        return Claim(caller, key, token) if inserted else None

    async def find() -> asyncpg.Record | None:
        return await pool.fetchrow(
            """SELECT request_hash, status_code, response_body, claim,
                      created_at < now() - make_interval(secs => $3) AS stale
                 FROM idempotency_keys WHERE caller = $1 AND key = $2""",
            caller,
            key,
            stale_s,
        )

    async def take_over(row: asyncpg.Record) -> Claim | None:
        if not row["stale"]:
            return None
        taken = await pool.fetchval(
            """UPDATE idempotency_keys SET claim = $4, created_at = now()
                WHERE caller = $1 AND key = $2 AND claim = $3 AND status_code IS NULL RETURNING true""",
            caller,
            key,
            row["claim"],
            token,
        )
        return Claim(caller, key, token) if taken else None

    return await idempotency.claim(insert, find, req_hash, take_over=take_over)


async def complete(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, c: Claim, status_code: int, body: dict[str, Any]
) -> None:
    """Store the final response; call inside the effect's transaction."""
    if not await KEYS.complete(conn, c.handle, status_code, body):
        raise RuntimeError("idempotency claim lost (taken over as stale); rolling the effect back")


async def release(pool: asyncpg.Pool, c: Claim) -> None:
    """Forget an unfinished claim so the request can be retried with the same key."""
    await KEYS.release(pool, c.handle)


async def prune(pool: asyncpg.Pool, retention_s: float) -> int:
    """Every key past the retention: an unfinished one that old was left by a crashed process."""
    return await KEYS.prune(pool, retention_s, finished_only=False)
