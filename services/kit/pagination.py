"""Keyset pagination: opaque cursors naming a position ``(created_at, id)`` in a list ordered by both.

A cursor comes back from the client, so decoding trusts nothing: anything that is not a cursor this code
wrote, including a timestamp whose offset moves it outside the range a ``timestamptz`` parameter can carry
(``0001-01-01T00:00:00+14:00`` is year 0 in UTC), raises :class:`InvalidCursor`, which the kit answers with a
422 problem (``services.kit.errors``).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import orjson


class InvalidCursor(ValueError):
    """The client sent a cursor this service never issued (or one it can no longer use)."""


def encode_cursor(at: datetime, key: uuid.UUID) -> str:
    raw = orjson.dumps({"t": at.isoformat(), "id": str(key)})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor names, as an aware UTC timestamp and an id."""
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromisoformat(doc["t"])
        key = uuid.UUID(doc["id"])
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        # Converted here, where an overflow is the client's mistake, not in the driver's encoder mid-query.
        at = at.astimezone(UTC)
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise InvalidCursor("malformed cursor") from exc
    return at, key


def next_cursor(rows: Sequence[asyncpg.Record], limit: int) -> str | None:
    """The cursor of the page after ``rows[:limit]``, for rows fetched with ``LIMIT limit + 1`` (the extra
    row only says that more follow), or None on the last page."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(last["created_at"], last["id"])
