"""Bad values never become a 500: crafted cursors and database data errors are 422 problems."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from fastapi import APIRouter

from services.kit.app import create_app
from services.kit.pagination import InvalidCursor, decode_cursor, encode_cursor
from services.kit.settings import KitSettings


def _cursor(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


# A fixed id: parameters must be the same in every pytest-xdist worker, which collects on its own.
ID = str(uuid.UUID(int=1))


def test_a_cursor_round_trips_as_an_aware_utc_position() -> None:
    at = datetime(2026, 12, 1, 18, 0, 0, 123456, tzinfo=UTC)
    key = uuid.uuid4()
    assert decode_cursor(encode_cursor(at, key)) == (at, key)


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "",
        _cursor([]),
        _cursor("x"),
        _cursor({"t": 5, "id": ID}),
        _cursor({"t": "2026-01-01T00:00:00+00:00"}),
        _cursor({"t": "2026-01-01T00:00:00+00:00", "id": 7}),
        _cursor({"t": "2026-01-01T00:00:00", "id": ID}),
        # Valid ISO 8601, but year 0 or 10000 once converted to UTC: the driver cannot encode them (unchecked: a 500).
        _cursor({"t": "0001-01-01T00:00:00+14:00", "id": ID}),
        _cursor({"t": "9999-12-31T23:59:59-14:00", "id": ID}),
    ],
)
def test_crafted_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


router = APIRouter()


@router.get("/api/v1/things")
async def list_things(cursor: str) -> dict[str, str]:
    at, _ = decode_cursor(cursor)
    return {"at": at.isoformat()}


@router.get("/api/v1/encode")
async def encode_fails() -> None:
    raise asyncpg.DataError("invalid input for query argument $1: 'secret-value-1234' (date value out of range)")


@router.get("/api/v1/numeric")
async def numeric_fails() -> None:
    raise asyncpg.exceptions.NumericValueOutOfRangeError("value 99999999999999999999 is out of range")


def _get(path: str, **params: str) -> httpx.Response:
    # A database URL makes it a database service (problem handlers for the driver); without the lifespan no
    # connection is ever opened.
    app = create_app(
        KitSettings(service_name="products", database_url="postgresql://u@127.0.0.1:1/x"),
        title="t",
        description="d",
        routers=[router],
    )

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://svc"
        ) as client:
            return await client.get(path, params=params)

    return asyncio.run(run())


def test_an_invalid_cursor_is_a_422_problem_naming_the_parameter() -> None:
    r = _get("/api/v1/things", cursor=_cursor({"t": "0001-01-01T00:00:00+14:00", "id": ID}))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"] == [{"loc": ["query", "cursor"], "msg": "malformed cursor"}]


@pytest.mark.parametrize("path", ["/api/v1/encode", "/api/v1/numeric"])
def test_database_data_errors_are_422_problems_that_do_not_echo_the_value(path: str) -> None:
    """asyncpg's parameter-encoding errors and PostgreSQL's class-22 errors are about a value the client sent;
    they quote it, so the body must not."""
    r = _get(path)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "secret-value" not in r.text
    assert "9999" not in r.text
