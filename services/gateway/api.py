"""The gateway's own routes (the upstreams' readiness at a glance, the merged OpenAPI document) and the ASGI
front that sends the catalog's public prefixes to the forwarding endpoints.

The gateway's own ``/readyz`` is the kit's: local to the process (it answers once start-up has opened the
upstream pools and the rate-limit table). It never waits for an upstream: one unready service would
otherwise take every gateway replica out of rotation and the whole API down with it. Each service's
readiness is its own probe's business; the gateway answers for that service's routes with fast problems
(timeouts, circuit breaker) while it is away, and ``/readyz/upstreams`` shows all of them for dashboards,
tests and operators."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from services import catalog
from services.gateway import openapi
from services.gateway.proxy import ForwardEndpoint, Gateway
from services.gateway.ratelimit import SharedTokenBuckets
from services.gateway.settings import Settings
from services.kit.app import ObservabilityMiddleware
from services.kit.errors import PROBLEM_JSON, Problem, problem_body

log = logging.getLogger("gateway")



@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """What the kit's observability middleware reads from ``scope["route"]``: the template for labels."""

    path: str


class EdgeApp:
    """The ASGI application uvicorn runs. Requests under a routed public prefix go straight to the
    forwarding endpoint, wrapped in the kit's observability middleware (request ID, trace context,
    metrics by route template, access log) and a problem handler; everything else (``/healthz``,
    ``/readyz``, ``/readyz/upstreams``, ``/metrics``, ``/openapi.json``, 404s) and the lifespan go to the
    FastAPI app.

    The forwarded path skips FastAPI's routing, exception and telemetry layers on purpose: they cost more
    per request than the forwarding itself, and the gateway's throughput is the benchmark's subject.
    """

    def __init__(self, app: FastAPI, settings: Settings, gateway: Gateway) -> None:
        self.app = app
        self.state = app.state
        self._table: list[tuple[str, bool, RouteTemplate, RouteTemplate, ForwardEndpoint]] = []
        for prefix, service in catalog.route_table():
            upstream = gateway.upstreams.get(service.name)
            if upstream is None:
                continue
            exact_only = prefix.endswith(".json")
            self._table.append((prefix, exact_only, RouteTemplate(prefix), RouteTemplate(prefix + "/{rest:path}"),
                                ForwardEndpoint(gateway, upstream)))
        self._forward = ObservabilityMiddleware(self._dispatch, service=settings.service_name,
                                                base_uri=settings.problem_base_uri)
        self._base_uri = settings.problem_base_uri

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            for prefix, exact_only, at_prefix, below_prefix, endpoint in self._table:
                if path == prefix:
                    scope["route"], scope["endpoint"] = at_prefix, endpoint
                elif not exact_only and path.startswith(prefix) and path[len(prefix):len(prefix) + 1] == "/":
                    scope["route"], scope["endpoint"] = below_prefix, endpoint
                else:
                    continue
                await self._forward(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint: ForwardEndpoint = scope["endpoint"]
        try:
            await endpoint(scope, receive, send)
        except Problem as problem:
            body = problem_body(self._base_uri, problem.status, problem.detail, scope["path"], kind=problem.kind,
                                title=problem.title, **problem.extensions)
            response = JSONResponse(body, status_code=problem.status, headers=problem.headers,
                                    media_type=PROBLEM_JSON)
            await response(scope, receive, send)


async def _upstream_ready(client: httpx.AsyncClient, name: str, base_url: str, wait_s: float) -> str | None:
    """None when the upstream answers /readyz with 200 in time, else a short reason."""
    try:
        response = await client.get(f"{base_url}/readyz", timeout=wait_s)
    except httpx.TimeoutException:
        return "timeout"
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None if response.status_code == 200 else f"status {response.status_code}"


async def upstreams_status(request: Request) -> JSONResponse:
    """Every routed upstream's own /readyz, checked in parallel: 200 when all answer ready, else a 503
    ``not-ready`` problem naming the failing ones. Never the gateway's readiness probe."""
    app: FastAPI = request.app
    gateway: Gateway = app.state.gateway
    client: httpx.AsyncClient = app.state.ops_client
    timeout = gateway.settings.readiness_timeout_s
    names = list(gateway.upstreams)
    reasons = await asyncio.gather(*(
        _upstream_ready(client, name, gateway.upstreams[name].base_url, timeout) for name in names
    ))
    upstreams = {name: reason or "ready" for name, reason in zip(names, reasons, strict=True)}
    failing = sorted(name for name, state in upstreams.items() if state != "ready")
    if failing:
        raise Problem(503, "Not ready: " + ", ".join(f"{n} ({upstreams[n]})" for n in failing),
                      kind="not-ready", failing=failing, upstreams=upstreams)
    return JSONResponse({"status": "ready", "upstreams": upstreams})


class OpenAPICache:
    """The merged document, rebuilt at most every ``ttl_s``; an upstream that cannot be reached keeps its
    last good document (and, having none, is left out until it answers)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._merged: dict[str, Any] | None = None
        self._built_at = float("-inf")
        self._last_good: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    async def get(self, app: FastAPI) -> dict[str, Any]:
        if self._merged is not None and time.monotonic() - self._built_at < self.ttl_s:
            return self._merged
        async with self._lock:
            if self._merged is not None and time.monotonic() - self._built_at < self.ttl_s:
                return self._merged
            gateway: Gateway = app.state.gateway
            client: httpx.AsyncClient = app.state.ops_client
            names = list(gateway.upstreams)
            fetched = await asyncio.gather(*(
                self._fetch(client, gateway.upstreams[n].base_url, gateway.settings.readiness_timeout_s * 3)
                for n in names
            ))
            complete = True
            for name, doc in zip(names, fetched, strict=True):
                if doc is not None:
                    self._last_good[name] = doc
                elif name not in self._last_good:
                    complete = False
            merged = openapi.merge(app.openapi(), self._last_good)
            if complete:
                self._merged, self._built_at = merged, time.monotonic()
            return merged

    @staticmethod
    async def _fetch(client: httpx.AsyncClient, base_url: str, wait_s: float) -> dict[str, Any] | None:
        try:
            response = await client.get(f"{base_url}/openapi.json", timeout=wait_s)
            if response.status_code == 200:
                doc = response.json()
                return doc if isinstance(doc, dict) else None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("openapi fetch failed", extra={"event": "openapi_fetch_failed",
                                                       "error_type": type(exc).__name__})
        return None


async def merged_openapi(request: Request) -> JSONResponse:
    cache: OpenAPICache = request.app.state.openapi_cache
    return JSONResponse(await cache.get(request.app))


def install(app: FastAPI, settings: Settings, gateway: Gateway) -> None:
    """Serve the merged document at /openapi.json (instead of FastAPI's own) and /api/v1/openapi.json, its
    reference page at /api/v1/docs, and the upstreams' readiness at /readyz/upstreams; keep the gateway state."""
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != "/openapi.json"]
    app.add_route("/openapi.json", merged_openapi, include_in_schema=False)
    app.add_route(openapi.PUBLIC_DOCUMENT, merged_openapi, include_in_schema=False)
    openapi.install_reference(app)
    app.add_route("/readyz/upstreams", upstreams_status, include_in_schema=False)
    app.router.redirect_slashes = False  # never answer with a redirect the upstream did not ask for
    app.state.gateway = gateway
    app.state.openapi_cache = OpenAPICache(settings.openapi_cache_ttl_s)


async def start(app: FastAPI) -> None:
    gateway: Gateway = app.state.gateway
    settings = gateway.settings
    if settings.rate_limit_enabled:
        gateway.buckets = SharedTokenBuckets(settings.rate_limit_state_path, settings.rate_limit_table_slots)
    verifier = getattr(app.state, "token_verifier", None)
    gateway.verifier = verifier
    app.state.ops_client = httpx.AsyncClient(trust_env=False, timeout=settings.readiness_timeout_s)
    for upstream in gateway.upstreams.values():
        upstream.open()


async def stop(app: FastAPI) -> None:
    gateway: Gateway = app.state.gateway
    await gateway.aclose()
    if gateway.buckets is not None:
        gateway.buckets.close()
    await app.state.ops_client.aclose()
