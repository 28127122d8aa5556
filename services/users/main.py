"""The users service app: ``uvicorn services.users.main:app``."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from services.kit.app import create_app
from services.kit.auth import StaticKeys, TokenVerifier
from services.kit.background import periodic
from services.kit.deps import pool_of, settings_of, state_of
from services.users import api, store
from services.users.passwords import Passwords
from services.users.settings import Settings
from services.users.throttle import Throttle
from services.users.tokens import Signer

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
PURGE_INTERVAL_S = 300.0


async def _start(app: FastAPI) -> None:
    """Build what the routes use (``deps``) and create the first admin."""
    settings = settings_of(app, Settings)
    signer = Signer(settings)
    app.state.signer = signer
    # The service verifies its own tokens with the keys it signs with: no HTTP round trip to itself.
    app.state.token_verifier = TokenVerifier(
        StaticKeys(signer.public_keys), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    passwords = Passwords(settings)
    app.state.passwords = passwords
    app.state.throttle = Throttle(settings)
    await passwords.warm_up()
    await _bootstrap_admin(app)


async def _bootstrap_admin(app: FastAPI) -> None:
    """Create the first admin from ADMIN_EMAIL / ADMIN_PASSWORD, once.

    Idempotent and safe for replicas starting together (ON CONFLICT DO NOTHING). An existing account is
    never changed: its password is not reset (a restart must not undo a password change) and an existing
    non-admin account with that e-mail is not promoted (whoever registered it first would become admin).
    Both cases are logged so an operator can act.
    """
    settings = settings_of(app, Settings)
    if settings.admin_email is None or settings.admin_password is None:
        return
    pool, passwords = pool_of(app), state_of(app, "passwords", Passwords)
    password = settings.admin_password.get_secret_value()
    created = await store.ensure_admin(pool, settings.admin_email, "Administrator", await passwords.hash(password))
    if created:
        log.info("first admin created", extra={"event": "admin_created"})
        return
    existing = await store.user_by_email(pool, settings.admin_email)
    if existing is None:  # pragma: no cover - deleted between the two statements
        return
    if "admin" not in existing.roles:
        log.error(
            "ADMIN_EMAIL belongs to an account without the admin role; it was not promoted",
            extra={"event": "admin_bootstrap_conflict", "user_id": str(existing.id)},
        )
    elif not await passwords.verify(existing.password_hash, password):
        log.warning(
            "the admin exists and its password differs from ADMIN_PASSWORD; it was not reset",
            extra={"event": "admin_password_not_reset", "user_id": str(existing.id)},
        )


async def _purge(app: FastAPI) -> None:
    """Housekeeping: drop login failures older than the window and long-expired refresh tokens."""
    pool = pool_of(app)
    await state_of(app, "throttle", Throttle).purge(pool)
    await store.purge_expired(pool, keep_spent_s=settings_of(app, Settings).refresh_token_ttl_s)


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_app(
        settings,
        title="users",
        description="Accounts, argon2id passwords, sessions with refresh-token rotation, EdDSA access tokens "
        "and their JWKS.",
        routers=[api.router],
        front_routes=api.FRONT_ROUTES,
        migrations=MIGRATIONS,
        on_startup=[_start],
        background=[periodic(PURGE_INTERVAL_S, _purge, name="purge")],
    )


app = build_app()
