"""The payments service: ``uvicorn services.payments.main:app``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.kit.app import create_app
from services.kit.errors import problem_response
from services.payments import idempotency
from services.payments.api import router
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


async def start_pruner(app: FastAPI) -> None:
    app.state.pruner = asyncio.create_task(_prune_loop(app), name="idempotency-pruner")


async def stop_pruner(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "pruner", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


_DB_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
            asyncpg.InterfaceError)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database went away (a restart, a failover): 503 and a hint to retry, not a 500. The pool
    reconnects by itself once the server is back, so the service needs no restart."""
    log.warning("database unavailable", extra={"event": "db_unavailable", "error_type": type(exc).__name__})
    return problem_response(request, 503, "The service's database is unavailable; retry shortly.",
                            kind="service-unavailable", headers={"Retry-After": "1"})


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # fields come from the environment
    app = create_app(
        settings,
        title="payments",
        description="Simulated card processor: idempotent charges and refunds, a double-entry ledger. "
                    "Stores only brand, last4, expiry and a keyed fingerprint of a card.",
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
        on_startup=[start_pruner],
        on_shutdown=[stop_pruner],
    )
    for exc_type in _DB_DOWN:
        app.add_exception_handler(exc_type, _database_unavailable)
    return app


app = build_app()
