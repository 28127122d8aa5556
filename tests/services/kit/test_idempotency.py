"""The decision every idempotent endpoint makes for a key (``services.kit.idempotency.claim``), without a
database: the services' tests cover the same rules end to end through orders and payments."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import pytest

from services.kit.errors import Problem
from services.kit.idempotency import IdempotencyConflict, IdempotencyInFlight, Stored, claim


class Keys:
    """An in-memory key table: ``rows`` answered in turn by ``find`` (None: released meanwhile)."""

    def __init__(self, *rows: dict[str, Any] | None, free: bool = False) -> None:
        self.rows = list(rows)
        self.free = free
        self.inserts = 0

    async def insert(self) -> str | None:
        self.inserts += 1
        return f"handle-{self.inserts}" if self.free else None

    async def find(self) -> asyncpg.Record | None:
        row = self.rows.pop(0) if self.rows else None
        return cast(asyncpg.Record, row)


def _run(keys: Keys, req_hash: str = "h1", **kwargs: Any) -> str | Stored:
    return asyncio.run(claim(keys.insert, keys.find, req_hash, **kwargs))


def test_a_free_key_is_owned_by_the_request_that_inserts_it() -> None:
    assert _run(Keys(free=True)) == "handle-1"


def test_a_finished_key_replays_its_first_response() -> None:
    keys = Keys({"request_hash": "h1", "status_code": 201, "response_body": '{"id": 7}'})
    assert _run(keys) == Stored(201, {"id": 7})


def test_the_same_key_with_another_request_is_a_conflict_not_a_second_effect() -> None:
    keys = Keys({"request_hash": "other", "status_code": 201, "response_body": "{}"})
    with pytest.raises(IdempotencyConflict) as caught:
        _run(keys)
    assert (caught.value.status, caught.value.kind) == (422, "idempotency-conflict")


def test_an_unfinished_key_is_in_flight_and_names_what_is_running() -> None:
    keys = Keys({"request_hash": "h1", "status_code": None, "response_body": None})
    with pytest.raises(IdempotencyInFlight) as caught:
        _run(keys, what="An order")
    problem: Problem = caught.value
    assert (problem.status, problem.kind) == (409, "idempotency-in-flight")
    assert problem.detail == "An order with this Idempotency-Key is still being processed; retry shortly."
    assert keys.inserts == 1


def test_an_unfinished_key_may_be_taken_over_when_the_service_allows_it() -> None:
    unfinished = {"request_hash": "h1", "status_code": None, "response_body": None}

    async def take_over(row: asyncpg.Record) -> str | None:
        return "taken"

    assert _run(Keys(unfinished), take_over=take_over) == "taken"


def test_a_key_released_between_insert_and_read_is_tried_again_a_bounded_number_of_times() -> None:
    keys = Keys(None, None, None, None)
    with pytest.raises(IdempotencyInFlight):
        _run(keys)
    assert keys.inserts == 3
