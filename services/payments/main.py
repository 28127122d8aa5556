"""The payments service: ``uvicorn services.payments.main:app``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI

from services.kit.app import create_app
from services.payments import api, idempotency, internal
from services.payments.settings import Settings

log = logging.getLogger("payments")


async def _prune_loop(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    while True:
        try:
            removed = await idempotency.prune(app.state.pool, settings.idempotency_retention_s)
            if removed:
                log.info("idempotency keys pruned", extra={"event": "idempotency_pruned", "count": removed})
        except Exception as exc:  # the database may be restarting: try again next round
            log.warning("idempotency prune failed", extra={"event": "idempotency_prune_failed",
                                                           "error_type": type(exc).__name__})
        await asyncio.sleep(settings.prune_interval_s)


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # fields come from the environment
    app = create_app(
        settings,
        title="payments",
        description="Simulated card processor: idempotent charges and refunds, a double-entry ledger. "
                    "Stores only brand, last4, expiry and a keyed fingerprint of a card.",
        routers=[api.router, internal.router],
        migrations=Path(__file__).parent / "migrations",
        background=[_prune_loop],
    )
    return app


app = build_app()
