"""The products service app: ``uvicorn services.products.main:app``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.kit.app import create_app
from services.products import api, internal
from services.products.settings import Settings


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_app(
        settings,
        title="Products",
        description="Catalogue and inventory: products, stock, reservations that never oversell, change feed.",
        routers=[api.router, api.categories_router, internal.router],
        # Tried before every other route: the catalogue read (the hot path), as a lean Starlette endpoint
        # (see api.read_product_fast). Paths do not overlap, so only the cost changes, not what matches.
        front_routes=api.FAST_ROUTES,
        migrations=Path(__file__).parent / "migrations",
    )
    return app


app = build_app()
