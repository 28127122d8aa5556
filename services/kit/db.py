"""The asyncpg pool: credentials from a URL, a Secrets Manager secret or an IAM database-authentication
token, TLS that verifies the server, retry while the database comes up, and fresh credentials when the
server rejects the current ones (rotation, expiry).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from services.kit import tls
from services.kit.settings import KitSettings

log = logging.getLogger(__name__)

# Errors that mean "not up yet" (or "just restarted"): worth retrying at start-up.
_TRANSIENT = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidPasswordError,
)


class SecretCredentials:
    """Reads ``{"username", "password"}`` from the Secrets Manager secret RDS manages.

    The value is cached for ``ttl`` seconds and dropped at once when the server rejects the password,
    so a rotation is picked up on the next connection attempt without a restart.
    """

    def __init__(self, arn: str, region: str | None, endpoint_url: str | None, ttl: float) -> None:
        import boto3

        self.arn = arn
        self.ttl = ttl
        self._client = boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint_url)
        self._value: tuple[str, str] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._value = None

    async def get(self) -> tuple[str, str]:
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at > self.ttl:
                response = await asyncio.to_thread(self._client.get_secret_value, SecretId=self.arn)
                try:
                    doc = json.loads(response["SecretString"])
                    self._value = (str(doc["username"]), str(doc["password"]))
                except (KeyError, ValueError, TypeError) as exc:
                    raise RuntimeError(f"secret {self.arn} is not an RDS credentials secret") from exc
                self._read_at = time.monotonic()
                log.info("database credentials read", extra={"event": "db_secret_read"})
            return self._value


class IamTokenCredentials:
    """``(user, token)`` for RDS IAM database authentication: the token is a SigV4-presigned request made
    locally from the pod's IRSA credentials (botocore ``generate_db_auth_token``, no API call). It is valid
    for 15 minutes and only checked when a connection opens, so it is renewed after ``ttl`` seconds (and at
    once when the server rejects it)."""

    def __init__(self, user: str, host: str, port: int, region: str | None, ttl: float = 600.0) -> None:
        import boto3

        self.user, self.host, self.port, self.ttl = user, host, port, ttl
        self._client = boto3.client("rds", region_name=region)
        self._token: str | None = None
        self._made_at = 0.0

    def invalidate(self) -> None:
        self._token = None

    async def get(self) -> tuple[str, str]:
        token = self._token
        if token is None or time.monotonic() - self._made_at > self.ttl:
            token = str(
                await asyncio.to_thread(
                    self._client.generate_db_auth_token, DBHostname=self.host, Port=self.port, DBUsername=self.user
                )
            )
            self._token, self._made_at = token, time.monotonic()
        return self.user, token


def _ssl_context(settings: KitSettings) -> ssl.SSLContext | bool:
    """No TLS, or TLS that verifies the server. When the server's CA is the process's own (one machine:
    DB_SSL_ROOT_CERT is TLS_CA_FILE), the process's identity context: it verifies the server the same way,
    presents the process's certificate (the embedded PostgreSQL requires one naming the role), and is the
    context ``Identity.reload_if_changed`` loads a renewed certificate into, so every new connection of the
    pool presents the current one. A server with another CA (RDS, one the caller names) gets no client
    certificate: ours means nothing to it."""
    if settings.db_sslmode == "disable":
        return False
    identity = tls.identity(settings)
    if identity is not None and _same_file(settings.db_ssl_root_cert, identity.ca_file):
        return identity.client_context()
    ctx = ssl.create_default_context(cafile=str(settings.db_ssl_root_cert))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _same_file(a: Path | None, b: Path) -> bool:
    return a is not None and a.resolve() == b.resolve()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond what asyncpg always does (roll back a transaction left
    open, drop client-side listeners: ``Connection._reset``, asyncpg 0.32 ``pool.py`` release).

    asyncpg's default reset sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;``
    on every release, and every ``pool.fetch*``/``execute`` is an acquire and a release: one extra round
    trip and a server statement per query. The services keep no session state, so there is nothing to
    reset: advisory locks are transaction-scoped or released in a ``finally`` on the connection that took
    them, settings are ``set_config(..., true)`` (transaction-local), nothing LISTENs, and cursors live
    only inside transactions. ``tests/services/kit/test_db.py`` checks the services' SQL for
    session-scoped state.
    """


class Database:
    """Owns the pool. ``connect_kwargs`` are fixed; the password may change under us (rotation)."""

    def __init__(self, settings: KitSettings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self._secret: SecretCredentials | IamTokenCredentials | None = None
        self._kwargs: dict[str, Any] = {"ssl": _ssl_context(settings), "timeout": settings.db_connect_timeout_s}
        if settings.db_secret_arn:
            self._secret = SecretCredentials(
                settings.db_secret_arn, settings.aws_region, settings.aws_endpoint_url, settings.db_secret_ttl_s
            )
            self._kwargs.update(host=settings.db_host, port=settings.db_port, database=settings.db_name)
        elif settings.db_iam_user and settings.db_host:
            self._secret = IamTokenCredentials(
                settings.db_iam_user, settings.db_host, settings.db_port, settings.aws_region
            )
            self._kwargs.update(host=settings.db_host, port=settings.db_port, database=settings.db_name)
        elif settings.database_url:
            self._kwargs.update(_parse_url(settings.database_url.get_secret_value()))
        else:
            raise ValueError(f"{settings.service_name}: set DATABASE_URL, DB_SECRET_ARN or DB_IAM_USER")

    async def _connect(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        """Pool connect hook: fetch the current password; on rejection re-read the secret once."""
        params = {**self._kwargs, **kwargs}
        if self._secret is None:
            return await asyncpg.connect(**params)
        user, password = await self._secret.get()
        try:
            return await asyncpg.connect(user=user, password=password, **params)
        except asyncpg.InvalidPasswordError:
            self._secret.invalidate()
            user, password = await self._secret.get()
            log.warning("password rejected; secret re-read (rotation)", extra={"event": "db_secret_rotated"})
            return await asyncpg.connect(user=user, password=password, **params)

    async def connect(self) -> asyncpg.Pool:
        """Create the pool, retrying with back-off until ``db_startup_timeout_s`` (the DB may start later)."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_TRANSIENT),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            stop=stop_after_delay(self.settings.db_startup_timeout_s),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.warning(
                        "database not reachable yet; retrying",
                        extra={"event": "db_connect_retry", "attempt": attempt.retry_state.attempt_number},
                    )
                self.pool = await asyncpg.create_pool(
                    connect=self._connect,
                    min_size=self.settings.db_pool_min,
                    max_size=self.settings.db_pool_max,
                    # Recycle idle connections so a failover or rotation is absorbed gradually.
                    max_inactive_connection_lifetime=60.0,
                    reset=_keep_session,
                )
        assert self.pool is not None
        return self.pool

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None


def _parse_url(url: str) -> dict[str, Any]:
    """Split a ``postgresql://user:pass@host:port/db`` URL into asyncpg keyword arguments."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise ValueError("DATABASE_URL must look like postgresql://user:password@host:port/database")
    kwargs: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 5432,
        "database": unquote(parts.path.lstrip("/")),
    }
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    return kwargs
