"""Typed dependencies: a route gets what start-up made, checked to be what it claims, and a test can swap it."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI

from services.kit.app import create_app
from services.kit.deps import PoolDep, get_pool, settings_of, state_of
from services.kit.settings import KitSettings

router = APIRouter()


@router.get("/api/v1/pool")
async def which_pool(pool: PoolDep) -> dict[str, str]:
    return {"pool": type(pool).__name__}


class FakePool(asyncpg.Pool):
    def __init__(self) -> None:  # no connections: the route only names it
        pass


def _get(app: FastAPI, path: str) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.get(path)

    return asyncio.run(run())


def test_a_test_can_override_a_dependency_without_touching_app_state() -> None:
    app = create_app(KitSettings(service_name="products"), title="t", description="d", routers=[router])
    app.dependency_overrides[get_pool] = FakePool
    assert _get(app, "/api/v1/pool").json() == {"pool": "FakePool"}


def test_a_dependency_start_up_has_not_made_is_a_500_problem_not_a_none() -> None:
    app = create_app(KitSettings(service_name="products"), title="t", description="d", routers=[router])
    r = _get(app, "/api/v1/pool")  # no lifespan ran: no pool
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"


def test_state_is_checked_against_the_type_the_getter_promises() -> None:
    app = FastAPI()
    app.state.settings = KitSettings(service_name="products")
    assert settings_of(app, KitSettings).service_name == "products"
    app.state.pool = "not a pool"
    with pytest.raises(RuntimeError, match=r"app.state.pool is a str, not a Pool"):
        state_of(app, "pool", asyncpg.Pool)
