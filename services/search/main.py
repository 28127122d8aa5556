"""The search service app: ``uvicorn services.search.main:app``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.kit.app import create_app
from services.kit.http import ServiceClient
from services.products.contract import ProductsClient
from services.search.api import router
from services.search.feed import HttpChangeFeed
from services.search.indexer import Indexer
from services.search.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def start_indexer(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.indexer = None
    if not settings.indexer_enabled:
        return
    client = ServiceClient(settings, "products", app.state.service_issuer, timeout=settings.indexer_feed_timeout_s,
                           max_connections=4)
    indexer = Indexer(app.state.pool, HttpChangeFeed(ProductsClient(client)), batch_size=settings.indexer_batch_size,
                      poll_interval=settings.indexer_poll_interval_s, backoff_max=settings.indexer_backoff_max_s)
    indexer.start()
    app.state.indexer = indexer


async def stop_indexer(app: FastAPI) -> None:
    indexer: Indexer | None = getattr(app.state, "indexer", None)
    if indexer is not None:
        await indexer.stop()
        await indexer.feed.aclose()
        app.state.indexer = None


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_app(
        settings,
        title="Search service",
        description="Product search over the catalogue: PostgreSQL full text with prefix matching and "
                    "pg_trgm typo tolerance, kept fresh from the products change feed.",
        routers=[router],
        migrations=MIGRATIONS,
        on_startup=[start_indexer],
        on_shutdown=[stop_indexer],
    )


app = build_app()
