"""The search service app: ``uvicorn services.search.main:app``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.kit.app import create_app
from services.kit.deps import issuer_of, pool_of, settings_of
from services.kit.http import ServiceClient
from services.products.contract import ProductsClient
from services.search.api import router
from services.search.deps import feed_of
from services.search.feed import HttpChangeFeed
from services.search.indexer import Indexer
from services.search.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def open_feed(app: FastAPI) -> None:
    """The products change-feed client, made at start-up so a deployment that may not read it fails there."""
    settings = settings_of(app, Settings)
    app.state.feed = HttpChangeFeed(
        ProductsClient(
            ServiceClient(
                settings, "products", issuer_of(app), timeout=settings.indexer_feed_timeout_s, max_connections=4
            )
        )
    )


async def close_feed(app: FastAPI) -> None:
    if (feed := feed_of(app)) is not None:
        await feed.aclose()


async def index_changes(app: FastAPI) -> None:
    """The indexer, a background loop of the kit: follows the change feed until shutdown."""
    settings, feed = settings_of(app, Settings), feed_of(app)
    assert feed is not None, "open_feed runs before the background loops"
    await Indexer(
        pool_of(app),
        feed,
        batch_size=settings.indexer_batch_size,
        poll_interval=settings.indexer_poll_interval_s,
        backoff_max=settings.indexer_backoff_max_s,
    ).run()


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_app(
        settings,
        title="Search service",
        description="Product search over the catalogue: PostgreSQL full text with prefix matching and "
        "pg_trgm typo tolerance, kept fresh from the products change feed.",
        routers=[router],
        migrations=MIGRATIONS,
        on_startup=[open_feed] if settings.indexer_enabled else [],
        on_shutdown=[close_feed],
        background=[index_changes] if settings.indexer_enabled else [],
    )


app = build_app()
