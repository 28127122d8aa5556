"""``create_app``: the one way a service is assembled, so every service has the same shape.

It wires settings, JSON logging, the problem handlers, the observability middleware, the database pool
and migrations, token verification, and the operational routes (``/healthz``, ``/readyz``,
``/metrics``). A service passes its routers and, if it needs them, start-up hooks (background workers,
bootstrap), extra readiness checks, routes to try before all others, and where (or whether) FastAPI
serves the service's OpenAPI document.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit import metrics, tls
from services.kit.auth import (
    JWKSClient,
    ServiceTokenIssuer,
    ServiceTokenVerifier,
    TokenVerifier,
    check_internal_routes,
)
from services.kit.background import Loop
from services.kit.context import request_id_var, traceparent_var, user_id_var
from services.kit.db import Database
from services.kit.errors import (
    PROBLEM_JSON,
    Problem,
    install_database_handlers,
    install_problem_handlers,
    problem_body,
    problem_responses,
)
from services.kit.logging import configure_logging
from services.kit.migrate import apply as apply_migrations
from services.kit.settings import KitSettings

log = logging.getLogger(__name__)

Hook = Callable[[FastAPI], Awaitable[None]]

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_GC_GEN0_THRESHOLD = 10_000  # allocations net of deallocations between young collections (CPython: 700)


class ObservabilityMiddleware:
    """Request ID, trace context, metrics by route template, and one JSON access-log line per request.

    Pure ASGI (not ``BaseHTTPMiddleware``) because it runs on every request and must stay cheap.
    """

    def __init__(self, app: ASGIApp, service: str, base_uri: str) -> None:
        self.app = app
        self.service = service
        self.base_uri = base_uri

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = traceparent = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
        if not rid or not _SANE_REQUEST_ID.match(rid):
            rid = uuid.uuid4().hex
        rid_token = request_id_var.set(rid)
        tp_token = traceparent_var.set(traceparent if traceparent and _TRACEPARENT.match(traceparent) else None)
        user_token = user_id_var.set(None)
        status = 500
        started = False
        raw_rid = rid.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", raw_rid)]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Handled here rather than by Starlette's outermost handler so the body still carries the
            # request ID and the failure is counted; the details go to the log, never to the client.
            log.exception("unhandled error", extra={"event": "unhandled_error", "error_type": type(exc).__name__})
            if not started:
                body = problem_body(
                    self.base_uri,
                    500,
                    "An unexpected error occurred; it was logged under this request_id.",
                    scope["path"],
                )
                await JSONResponse(body, status_code=500, media_type=PROBLEM_JSON)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
            metrics.HTTP_DURATION.labels(self.service, method, template).observe(elapsed)
            if scope["path"] not in _QUIET_PATHS:
                log.info(
                    "request",
                    extra={
                        "event": "request",
                        "method": method,
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(rid_token)
            traceparent_var.reset(tp_token)
            user_id_var.reset(user_token)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` once a body passes the limit; an ``HTTPException`` so FastAPI's body parsing
    passes it on unchanged (``fastapi/routing.py`` re-raises those, anything else becomes a 400) and the
    problem handler renders it."""


class RequestGuardMiddleware:
    """Request hygiene every service applies, whoever reaches it (the gateway, or anything inside the cluster):

    - one ``Authorization`` header at most (400): with two, a proxy and a service could each read a
      different one, so the identity checked would not be the identity acted for;
    - a body of at most ``max_body_bytes`` (413 problem): by ``Content-Length`` before anything is read, and
      by counting what arrives, which also covers chunked bodies that declare no length;
    - ``Cache-Control: no-store`` on every response that does not set its own cache policy: responses carry
      personal data (profiles, orders, payments, tokens) unless a route says they are public (the JWKS).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, base_uri: str) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.base_uri = base_uri

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        body = problem_body(self.base_uri, status, detail, scope["path"])
        await JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers={"Cache-Control": "no-store"})(
            scope, receive, send
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        authorizations = 0
        counted = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorizations += 1
            elif name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(scope, receive, send, 413, f"The request body is larger than {limit} bytes.")
                return
            elif name == b"transfer-encoding":
                # A body without a declared length: count it as it arrives. (With Content-Length, the HTTP
                # server delivers exactly that many bytes, so the check above is enough.)
                counted = True
        if authorizations > 1:
            await self._refuse(scope, receive, send, 400, "Send at most one Authorization header.")
            return
        started = False

        async def send_with_cache_policy(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = message.get("headers", [])
                for name, _ in headers:
                    if name.lower() == b"cache-control":
                        break
                else:
                    message["headers"] = [*headers, (b"cache-control", b"no-store")]
            await send(message)

        if not counted:
            await self.app(scope, receive, send_with_cache_policy)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(413, f"The request body is larger than {limit} bytes.")
            return message

        try:
            await self.app(scope, counted_receive, send_with_cache_policy)
        except _BodyTooLarge as exc:  # read outside FastAPI's handlers (a middleware, say)
            if started:
                raise
            await self._refuse(scope, receive, send, 413, str(exc.detail))


class FrontRoute(Route):
    """A plain Starlette route for ``create_app(front_routes=...)``: a hot path served without FastAPI's
    per-request dependency resolution and response validation, in front of the documented route it answers
    for. It serves exactly ``methods`` (Starlette would add HEAD to a GET route; FastAPI's routes do not),
    and reports itself in the scope as FastAPI's routes do, so metrics and access logs carry its path
    template (``/api/v1/products/{product_id}``), never ``<unmatched>``."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: Sequence[str]) -> None:
        super().__init__(path, endpoint, methods=list(methods), include_in_schema=False)
        self.methods = {m.upper() for m in methods}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


_UUID = TypeAdapter(uuid.UUID)


def path_uuid(request: Request, name: str) -> uuid.UUID:
    """A ``FrontRoute``'s UUID path parameter, refused exactly as FastAPI refuses it for the documented
    route behind (a 422 whose ``errors`` are pydantic's, located at ``("path", name)``)."""
    try:
        return _UUID.validate_python(request.path_params[name])
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("path", name, *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _tune_gc() -> None:
    """Cheaper garbage collection for a request-serving process (the profile put the collector at ~7 % of
    a service's CPU per request). What start-up made (modules, routes, models, pools) lives as long as the
    process: frozen, full collections stop traversing it. Request garbage is freed by reference counting
    anyway; a larger first-generation threshold runs the cycle collector over it less often."""
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def _operation_id(route: APIRoute) -> str:
    # Stable operation ids: the endpoint function's name, unique per service (checked at start-up).
    return route.name


def create_app(
    settings: KitSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    front_routes: Sequence[BaseRoute] = (),
    openapi_url: str | None = "/openapi.json",
    migrations: Path | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    readiness: Sequence[Hook] = (),
    background: Sequence[Loop] = (),
) -> FastAPI:
    """``background`` loops (``async def loop(app)``, running until cancelled) start after the start-up
    hooks and are cancelled, and awaited, before the shutdown hooks run.

    ``front_routes`` are tried before every other route (the docs, the operational routes, ``routers``):
    Starlette tries routes in order and each miss costs time, so a hot path can go first. With
    ``openapi_url=None`` FastAPI serves no document (and no docs pages); the service may serve its own."""
    configure_logging(settings)
    # The process's TLS identity (one machine): uvicorn serves with its server context
    # (services.deploy.serve), the clients call with its client context, and a loop follows its renewals.
    identity = tls.identity(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db: Database | None = None
        if settings.has_database:
            db = Database(settings)
            app.state.pool = await db.connect()
            metrics.register_pool(settings.service_name, lambda: db.pool if db else None)
            if migrations is not None:
                await apply_migrations(app.state.pool, migrations)
        jwks: JWKSClient | None = None
        if settings.jwks_url:
            jwks = JWKSClient(
                settings.jwks_url,
                ttl=settings.jwks_cache_ttl_s,
                min_refresh_interval=settings.jwks_min_refresh_interval_s,
                # On one machine the users service serves its JWKS over mutual TLS like everything else.
                client=httpx.AsyncClient(timeout=3.0, verify=identity.client_context()) if identity else None,
            )
            app.state.token_verifier = TokenVerifier(jwks, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        for hook in on_startup:
            await hook(app)
        _tune_gc()
        loops = [*background, tls.reload_loop(identity, settings.tls_reload_interval_s)] if identity else background
        tasks = [asyncio.create_task(loop(app), name=f"{settings.service_name}-{loop.__name__}") for loop in loops]
        log.info("service started", extra={"event": "started"})
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for hook in reversed(on_shutdown):
                await hook(app)
            if jwks is not None:
                await jwks.aclose()
            if db is not None:
                await db.close()

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        openapi_url=openapi_url,
        routes=list(front_routes),
    )
    app.state.settings = settings
    app.state.pool = None
    app.state.service_verifier = ServiceTokenVerifier(settings.service_name, settings.service_public_keys)
    app.state.service_issuer = (
        ServiceTokenIssuer(settings.service_name, settings.service_private_key.get_secret_value())
        if settings.service_private_key
        else None
    )
    install_problem_handlers(app, settings.problem_base_uri)
    if settings.has_database:
        install_database_handlers(app)
    # Added first so it runs inside the observability middleware: its refusals get a request ID and a metric.
    app.add_middleware(
        RequestGuardMiddleware, max_body_bytes=settings.max_body_bytes, base_uri=settings.problem_base_uri
    )
    app.add_middleware(ObservabilityMiddleware, service=settings.service_name, base_uri=settings.problem_base_uri)
    all_routers = [_ops_router(readiness), *routers]
    for router in all_routers:
        app.include_router(router)
    routes = [r for router in all_routers for r in router.routes]
    check_internal_routes(settings.service_name, routes)
    ids = [r.name for r in routes if isinstance(r, APIRoute)]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise RuntimeError(f"duplicate operation ids {sorted(duplicates)}: endpoint names must be unique")
    return app


async def check_database(app: FastAPI) -> None:
    pool = app.state.pool
    if pool is None:
        raise RuntimeError("database pool not started")
    async with asyncio.timeout(1.0):
        await pool.fetchval("SELECT 1")


def _ops_router(readiness: Sequence[Hook]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: the database and dependencies answer", responses=problem_responses(503))
    async def readyz(request: Request) -> dict[str, Any]:
        app: FastAPI = request.app
        checks: list[Hook] = [check_database] if app.state.settings.has_database else []
        checks.extend(readiness)
        failed = []
        for check in checks:
            try:
                await check(app)
            except Problem:
                raise  # a check that explains itself (e.g. the gateway's list of failing upstreams)
            except Exception as exc:
                failed.append(f"{check.__name__}: {type(exc).__name__}")
        if failed:
            raise Problem(503, "Not ready: " + "; ".join(failed), kind="not-ready")
        return {"status": "ready"}

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return router
