"""The framework ceiling for the products benchmark: FastAPI + asyncpg doing the same point select as
``GET /api/v1/products/{id}``, with nothing else (no middleware, no logging, no metrics, no auth).

``DATABASE_URL`` and ``DB_POOL_MAX`` come from the environment; run with
``uvicorn tests.bench.minimal_app:app`` (the benchmark starts it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request

from services.products.store import GET_PRODUCT_SQL


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get("DB_POOL_MAX", "10"))
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=size, max_size=size)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/products/{product_id}")
async def minimal_get_product(product_id: uuid.UUID, request: Request) -> dict[str, Any]:
    row = await request.app.state.pool.fetchrow(GET_PRODUCT_SQL, product_id)
    if row is None:
        raise HTTPException(404)
    return dict(row)
