"""The orders service: ``uvicorn services.orders.main:app``."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from services.kit.app import create_app
from services.kit.http import ServiceClient
from services.orders import recovery
from services.orders.api import router
from services.orders.saga import Saga
from services.orders.settings import Settings
from services.payments.contract import PaymentsClient
from services.products.contract import ProductsClient

log = logging.getLogger("orders")


async def start_saga(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    issuer = app.state.service_issuer
    app.state.products = ProductsClient(ServiceClient(settings, "products", issuer, timeout=settings.products_timeout_s,
                                                      max_connections=settings.peer_max_connections))
    app.state.payments = PaymentsClient(ServiceClient(settings, "payments", issuer, timeout=settings.payments_timeout_s,
                                                      max_connections=settings.peer_max_connections))
    app.state.saga = Saga(app.state.pool, settings, app.state.products, app.state.payments)


async def stop_saga(app: FastAPI) -> None:
    for name in ("products", "payments"):
        client: ProductsClient | PaymentsClient | None = getattr(app.state, name, None)
        if client is not None:
            await client.aclose()


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
        background=[recovery.run],
    )
    return app


app = build_app()
