"""What every idempotent endpoint shares (Stripe's semantics): the header, the keyed request fingerprint,
the stored first response, and the decision for a key that already exists.

How a key is stored differs per service (orders creates the order in the same statement as its key;
payments lets a stale claim be taken over), so storage stays in each service; this module is the part
that must behave the same everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Header
from fastapi.responses import JSONResponse

from services.kit.errors import PROBLEM_JSON, Problem

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]


@dataclass(frozen=True)
class Stored:
    """The stored first response of an idempotent request."""

    status_code: int
    body: dict[str, Any]


def require_key(key: str | None, hint: str = "") -> str:
    if not key:
        raise Problem(400, f"The Idempotency-Key header is required{hint}.", kind="idempotency-key-required")
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
        raise Problem(422, "This Idempotency-Key was already used with a different request.",
                      kind="idempotency-conflict")
    if row["status_code"] is not None:
        return Stored(int(row["status_code"]), json.loads(row["response_body"]))
    return None


def respond(status: int, body: dict[str, Any], *, replayed: bool = False) -> JSONResponse:
    """The response as first sent; a replay says so in ``Idempotent-Replayed``."""
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(body, status_code=status, headers=headers,
                        media_type=PROBLEM_JSON if status >= 400 else "application/json")
