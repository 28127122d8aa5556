"""Public routes: the catalogue (read by anyone, written by admins) and stock on hand (admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

import asyncpg
import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator

from services.kit.app import FrontRoute, path_uuid
from services.kit.auth import AdminUser
from services.kit.deps import PoolDep, pool_of
from services.kit.errors import problem_responses
from services.products import store
from services.products.contract import ProductNotFound
from services.products.deps import SettingsDep
from services.products.models import (
    CategoryList,
    Product,
    ProductCreate,
    ProductPage,
    ProductPatch,
    StockUpdate,
    storable_text,
)

router = APIRouter(prefix="/api/v1/products", tags=["products"])

_JSON = "application/json"
# Bodies that are not even text (undecodable bytes) are 400 from the framework; invalid JSON or values 422.


def _dumps(value: object) -> bytes:
    # asyncpg's UUID is not a uuid.UUID to orjson: the fallback turns it (and only it) into its string.
    return orjson.dumps(value, default=str)


_MAX_PRICE = 100_000_000_000


@router.get(
    "/{product_id}", response_model=Product, responses=problem_responses(404, 422), summary="One product with its stock"
)
async def get_product(product_id: uuid.UUID, pool: PoolDep) -> Response:
    # Documents the route (OpenAPI); requests are served by `read_product_fast` below, mounted ahead of it.
    return await _product_response(pool, product_id)


async def _product_response(pool: asyncpg.Pool, product_id: uuid.UUID) -> Response:
    # One prepared point select (asyncpg caches the statement per pooled connection); the row goes straight
    # to JSON bytes with orjson: the Product model documents the shape, re-validating our own row would
    # only cost time.
    row = await pool.fetchrow(store.GET_PRODUCT_SQL, product_id)
    if row is None:
        raise ProductNotFound(f"Product {product_id} does not exist.", [product_id])
    return Response(_dumps(dict(row.items())), media_type=_JSON)


async def read_product_fast(request: Request) -> Response:
    """``GET /api/v1/products/{product_id}`` as a plain Starlette endpoint: the hottest route skips
    FastAPI's per-request dependency resolution (about a fifth of the framework's cost per request) and
    parses its one parameter itself, answering exactly as the documented route would."""
    return await _product_response(pool_of(request.app), path_uuid(request, "product_id"))


# Mounted by main.py in front of every other route (same path and method as `get_product`).
FAST_ROUTES = [FrontRoute("/api/v1/products/{product_id}", read_product_fast, methods=["GET"])]


@router.get(
    "",
    response_model=ProductPage,
    responses=problem_responses(422),
    summary="List products in a stable order (keyset pagination)",
)
async def list_products(
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")] = None,
    category: Annotated[str | None, Query(min_length=1, max_length=64), AfterValidator(storable_text)] = None,
    min_price_cents: Annotated[int | None, Query(ge=0, le=_MAX_PRICE)] = None,
    max_price_cents: Annotated[int | None, Query(ge=0, le=_MAX_PRICE)] = None,
) -> Response:
    items, next_cursor = await store.list_products(
        pool,
        limit=limit,
        cursor=cursor,
        category=category,
        min_price_cents=min_price_cents,
        max_price_cents=max_price_cents,
    )
    return Response(_dumps({"items": items, "next_cursor": next_cursor}), media_type=_JSON)


@router.post(
    "",
    status_code=201,
    response_model=Product,
    responses=problem_responses(400, 401, 403, 409, 422),
    summary="Create a product (admin)",
)
async def create_product(body: ProductCreate, _admin: AdminUser, pool: PoolDep, settings: SettingsDep) -> Response:
    product = await store.create_product(pool, body, settings.change_feed_lock_key)
    return Response(
        _dumps(product), status_code=201, media_type=_JSON, headers={"Location": f"/api/v1/products/{product['id']}"}
    )


@router.patch(
    "/{product_id}",
    response_model=Product,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="Change some fields of a product (admin)",
)
async def update_product(
    product_id: uuid.UUID, body: ProductPatch, _admin: AdminUser, pool: PoolDep, settings: SettingsDep
) -> Response:
    product = await store.update_product(pool, product_id, body.changes(), settings.change_feed_lock_key)
    return Response(_dumps(product), media_type=_JSON)


@router.delete(
    "/{product_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 422),
    summary="Delete a product (admin; soft delete)",
)
async def delete_product(product_id: uuid.UUID, _admin: AdminUser, pool: PoolDep, settings: SettingsDep) -> Response:
    await store.delete_product(pool, product_id, settings.change_feed_lock_key)
    return Response(status_code=204)


@router.put(
    "/{product_id}/stock",
    response_model=Product,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="Set stock on hand (admin); never below what is reserved",
)
async def set_product_stock(product_id: uuid.UUID, body: StockUpdate, _admin: AdminUser, pool: PoolDep) -> Response:
    product = await store.set_stock(pool, product_id, body.quantity)
    return Response(_dumps(product), media_type=_JSON)


categories_router = APIRouter(prefix="/api/v1/categories", tags=["products"])


@categories_router.get("", response_model=CategoryList, summary="Every category with live products, by name")
async def list_categories(pool: PoolDep) -> Response:
    return Response(_dumps({"items": await store.list_categories(pool)}), media_type=_JSON)
