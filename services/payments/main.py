"""The payments service: ``uvicorn services.payments.main:app``."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from services.kit.app import create_app
from services.kit.background import periodic
from services.kit.deps import pool_of, settings_of
from services.payments import api, idempotency, internal
from services.payments.settings import Settings

log = logging.getLogger(__name__)


async def _prune_keys(app: FastAPI) -> None:
    removed = await idempotency.prune(pool_of(app), settings_of(app, Settings).idempotency_retention_s)
    if removed:
        log.info("idempotency keys pruned", extra={"event": "idempotency_pruned", "count": removed})


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # fields come from the environment
    app = create_app(
        settings,
        title="payments",
        description="Simulated card processor: idempotent charges and refunds, a double-entry ledger. "
        "Stores only brand, last4, expiry and a keyed fingerprint of a card.",
        routers=[api.router, internal.router],
        migrations=Path(__file__).parent / "migrations",
        background=[periodic(settings.prune_interval_s, _prune_keys, name="idempotency_prune")],
    )
    return app


app = build_app()
