"""What every idempotent endpoint shares (Stripe's semantics): the header, the keyed request fingerprint,
the claim of a key, the stored first response, and the decision for a key that already exists.

1. :func:`claim` stores the key (this request owns it, "in flight") or finds the key's first request:
   its stored response is replayed, a different body is 422 ``idempotency-conflict``, and a request still
   in flight is 409 ``idempotency-in-flight``.
2. The effect and the final response are written in ONE transaction (:meth:`KeyTable.complete`).
3. An unfinished key is deleted after an unexpected error (:meth:`KeyTable.release`): the client may
   retry with the same key.

How a key is claimed stays in each service, because what is stored with it differs: orders creates the
pending order in the same statement as its key; payments marks its claim with a token so a stale one (a
crashed process) can be taken over. Both keep the same columns in ``idempotency_keys``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from fastapi import Header
from fastapi.responses import JSONResponse

from services.kit.errors import PROBLEM_JSON, BadRequest, Conflict, ValidationFailed

T = TypeVar("T")
Conn = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]


@dataclass(frozen=True)
class Stored:
    """The stored first response of an idempotent request."""

    status_code: int
    body: dict[str, Any]


class IdempotencyKeyRequired(BadRequest):
    kind = "idempotency-key-required"

    def __init__(self, hint: str = "") -> None:
        super().__init__(f"The Idempotency-Key header is required{hint}.")


class IdempotencyConflict(ValidationFailed):
    """The key was used before with a different request: a client error, never a second effect (422)."""

    kind = "idempotency-conflict"

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was already used with a different request.")


class IdempotencyInFlight(Conflict):
    """The key's first request has not finished: retry shortly (409). ``what`` names that request."""

    kind = "idempotency-in-flight"

    def __init__(self, what: str = "A request") -> None:
        super().__init__(f"{what} with this Idempotency-Key is still being processed; retry shortly.")


def require_key(key: str | None, hint: str = "") -> str:
    if not key:
        raise IdempotencyKeyRequired(hint)
    return key


def request_hash(key: bytes, operation: str, body: Mapping[str, Any]) -> str:
    """A keyed hash of the request (operation + canonical JSON body). Keyed because bodies hold card
    numbers: an unkeyed hash of a card number can be brute-forced."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, f"{operation}\n{canonical}".encode(), hashlib.sha256).hexdigest()


def replay(row: asyncpg.Record, req_hash: str) -> Stored | None:
    """For a key that exists (a row with ``request_hash``, ``status_code``, ``response_body``): its stored
    response, or None while the first request is still in flight. The same key with a different request is
    a client error (422), never a second effect."""
    if row["request_hash"] != req_hash:
        raise IdempotencyConflict
    if row["status_code"] is not None:
        return Stored(int(row["status_code"]), json.loads(row["response_body"]))
    return None


async def claim(
    insert: Callable[[], Awaitable[T | None]],
    find: Callable[[], Awaitable[asyncpg.Record | None]],
    req_hash: str,
    *,
    take_over: Callable[[asyncpg.Record], Awaitable[T | None]] | None = None,
    what: str = "A request",
) -> T | Stored:
    """Own a key (the service's handle, e.g. the new order's id) or get its first request's response.

    ``insert`` stores the key (with whatever must exist with it) and returns the handle, or None when the
    key exists. ``find`` reads that key's row (``request_hash``, ``status_code``, ``response_body``, and
    what ``take_over`` needs), or None when it was released meanwhile: then the insert is tried again.
    ``take_over`` may claim an unfinished key whose first request died; otherwise an unfinished key is
    :class:`IdempotencyInFlight`.
    """
    for _ in range(3):
        owned = await insert()
        if owned is not None:
            return owned
        row = await find()
        if row is None:
            continue
        stored = replay(row, req_hash)
        if stored is not None:
            return stored
        if take_over is not None and (owned := await take_over(row)) is not None:
            return owned
        break
    raise IdempotencyInFlight(what)


@dataclass(frozen=True)
class KeyTable:
    """A service's ``idempotency_keys`` table (``request_hash``, ``status_code``, ``response_body`` as
    ``json``, ``created_at``, ``completed_at``) and the columns that name one request's key."""

    handle: tuple[str, ...]
    table: str = "idempotency_keys"

    def _unfinished(self) -> str:
        named = " AND ".join(f"{column} = ${i}" for i, column in enumerate(self.handle, start=1))
        return f"{named} AND status_code IS NULL"

    async def complete(self, conn: Conn, handle: Sequence[object], status_code: int, body: dict[str, Any]) -> bool:
        """Store the final response (replays return it); call inside the effect's transaction. False when
        the key is no longer this request's (released, or taken over as stale)."""
        n = len(self.handle)
        done = await conn.fetchval(
            f"UPDATE {self.table} SET status_code = ${n + 1}, response_body = ${n + 2}::json, "  # noqa: S608
            f"completed_at = now() WHERE {self._unfinished()} RETURNING true",
            *handle,
            status_code,
            json.dumps(body),
        )
        return bool(done)

    async def release(self, conn: Conn, handle: Sequence[object]) -> None:
        """Forget an unfinished key, so the client may retry with it."""
        await conn.execute(f"DELETE FROM {self.table} WHERE {self._unfinished()}", *handle)  # noqa: S608

    async def prune(self, conn: Conn, retention_s: float, *, finished_only: bool) -> int:
        """Delete keys older than the retention (Stripe keeps them at least 24 h); how many went."""
        finished = "status_code IS NOT NULL AND " if finished_only else ""
        result = await conn.execute(
            f"DELETE FROM {self.table} WHERE {finished}created_at < now() - make_interval(secs => $1)",  # noqa: S608
            retention_s,
        )
        return int(result.split()[-1])


def respond(status: int, body: dict[str, Any], *, replayed: bool = False) -> JSONResponse:
    """The response as first sent; a replay says so in ``Idempotent-Replayed``."""
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(
        body, status_code=status, headers=headers, media_type=PROBLEM_JSON if status >= 400 else "application/json"
    )
