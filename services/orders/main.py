"""The orders service: ``uvicorn services.orders.main:app``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.kit.app import create_app
from services.kit.background import periodic
from services.kit.deps import issuer_of, pool_of, settings_of
from services.kit.http import ServiceClient
from services.orders import recovery, store
from services.orders.api import router
from services.orders.saga import Saga
from services.orders.settings import Settings
from services.payments.contract import PaymentsClient
from services.products.contract import ProductsClient

KEY_PRUNE_INTERVAL_S = 3600.0


async def start_saga(app: FastAPI) -> None:
    settings, issuer = settings_of(app, Settings), issuer_of(app)
    app.state.products = products = ProductsClient(
        ServiceClient(
            settings,
            "products",
            issuer,
            timeout=settings.products_timeout_s,
            max_connections=settings.peer_max_connections,
        )
    )
    app.state.payments = payments = PaymentsClient(
        ServiceClient(
            settings,
            "payments",
            issuer,
            timeout=settings.payments_timeout_s,
            max_connections=settings.peer_max_connections,
        )
    )
    app.state.saga = Saga(pool_of(app), settings, products, payments)


async def stop_saga(app: FastAPI) -> None:
    for name in ("products", "payments"):
        client: ProductsClient | PaymentsClient | None = getattr(app.state, name, None)
        if client is not None:
            await client.aclose()


async def _prune_keys(app: FastAPI) -> None:
    """Forget the idempotency keys of orders finished longer ago than the retention (replays past it
    place a new order, as Stripe's expired keys do)."""
    await store.prune_keys(pool_of(app), settings_of(app, Settings).idempotency_retention_s)


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_app(
        settings,
        title="orders",
        description="Orders and the checkout saga: reserve stock, charge, commit, confirm; cancel and ship. "
        "A recovery loop finishes or compensates orders a crash left half-way.",
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
        on_startup=[start_saga],
        on_shutdown=[stop_saga],
        background=[recovery.run, periodic(KEY_PRUNE_INTERVAL_S, _prune_keys, name="idempotency_prune")],
    )
    return app


app = build_app()
