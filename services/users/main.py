"""The users service app: ``uvicorn services.users.main:app``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI

from services.kit.app import create_app
from services.kit.auth import StaticKeys, TokenVerifier
from services.users import store
from services.users.api import router
from services.users.passwords import Passwords
from services.users.settings import Settings
from services.users.throttle import Throttle
from services.users.tokens import Signer

log = logging.getLogger("users")

MIGRATIONS = Path(__file__).parent / "migrations"
PURGE_INTERVAL_S = 300.0


async def _start(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    signer = Signer(settings)
    app.state.signer = signer
    # The service verifies its own tokens with the keys it signs with: no HTTP round trip to itself.
    app.state.token_verifier = TokenVerifier(StaticKeys(signer.public_keys), issuer=settings.jwt_issuer,
                                             audience=settings.jwt_audience)
    app.state.passwords = Passwords(settings)
    app.state.throttle = Throttle(settings)
    await app.state.passwords.warm_up()
    await _bootstrap_admin(app)


async def _bootstrap_admin(app: FastAPI) -> None:
    """Create the first admin from ADMIN_EMAIL / ADMIN_PASSWORD, once.

    Idempotent and safe for replicas starting together (ON CONFLICT DO NOTHING). An existing account is
    never changed: its password is not reset (a restart must not undo a password change) and an existing
    non-admin account with that e-mail is not promoted (whoever registered it first would become admin).
    Both cases are logged so an operator can act.
    """
    settings: Settings = app.state.settings
    if settings.admin_email is None or settings.admin_password is None:
        return
    passwords: Passwords = app.state.passwords
    password = settings.admin_password.get_secret_value()
    created = await store.ensure_admin(app.state.pool, settings.admin_email, "Administrator",
                                       await passwords.hash(password))
    if created:
        log.info("first admin created", extra={"event": "admin_created"})
        return
    existing = await store.user_by_email(app.state.pool, settings.admin_email)
    if existing is None:  # pragma: no cover - deleted between the two statements
        return
    if "admin" not in existing.roles:
        log.error("ADMIN_EMAIL belongs to an account without the admin role; it was not promoted",
                  extra={"event": "admin_bootstrap_conflict", "user_id": str(existing.id)})
    elif not await passwords.verify(existing.password_hash, password):
        log.warning("the admin exists and its password differs from ADMIN_PASSWORD; it was not reset",
                    extra={"event": "admin_password_not_reset", "user_id": str(existing.id)})


async def _purge_forever(app: FastAPI) -> None:
    """Housekeeping: drop login failures older than the window and long-expired refresh tokens."""
    settings: Settings = app.state.settings
    while True:
        try:
            await app.state.throttle.purge(app.state.pool)
            await store.purge_expired(app.state.pool, keep_spent_s=settings.refresh_token_ttl_s)
        except Exception as exc:
            log.warning("purge failed", extra={"event": "purge_failed", "error_type": type(exc).__name__})
        await asyncio.sleep(PURGE_INTERVAL_S)


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_app(
        settings,
        title="users",
        description="Accounts, argon2id passwords, sessions with refresh-token rotation, EdDSA access tokens "
                    "and their JWKS.",
        routers=[router],
        migrations=MIGRATIONS,
        on_startup=[_start],
        background=[_purge_forever],
    )


app = build_app()
