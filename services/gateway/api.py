"""The gateway's own routes: aggregated readiness and the merged OpenAPI document; and the wiring of the
forwarding endpoints onto the catalog's public prefixes."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import Scope

from services import catalog
from services.gateway import openapi
from services.gateway.proxy import CachedVerifier, ForwardEndpoint, Gateway
from services.gateway.ratelimit import SharedTokenBuckets
from services.gateway.settings import Settings
from services.kit.errors import Problem

log = logging.getLogger("gateway")



class ForwardRoute(Route):
    """A route to a forwarding endpoint that, like FastAPI's routes, records itself in the scope, so the
    kit's metrics and access log label the request with the route template, not the raw path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


async def _upstream_ready(client: httpx.AsyncClient, name: str, base_url: str, wait_s: float) -> str | None:
    """None when the upstream answers /readyz with 200 in time, else a short reason."""
    try:
        response = await client.get(f"{base_url}/readyz", timeout=wait_s)
    except httpx.TimeoutException:
        return "timeout"
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None if response.status_code == 200 else f"status {response.status_code}"


async def upstreams_ready(app: FastAPI) -> None:
    """Readiness: every routed upstream answers its own /readyz in time (checked in parallel)."""
    gateway: Gateway = app.state.gateway
    client: httpx.AsyncClient = app.state.ops_client
    timeout = gateway.settings.readiness_timeout_s
    names = list(gateway.upstreams)
    reasons = await asyncio.gather(*(
        _upstream_ready(client, name, gateway.upstreams[name].base_url, timeout) for name in names
    ))
    failing = {name: reason for name, reason in zip(names, reasons, strict=True) if reason is not None}
    if failing:
        raise Problem(503, "Not ready: " + ", ".join(f"{n} ({r})" for n, r in failing.items()),
                      kind="not-ready", failing=sorted(failing))


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
    """Serve the merged document at /openapi.json (instead of FastAPI's own) and mount forwarding."""
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != "/openapi.json"]
    app.add_route("/openapi.json", merged_openapi, include_in_schema=False)
    app.router.redirect_slashes = False  # never answer with a redirect the upstream did not ask for
    for prefix, service in catalog.route_table():
        upstream = gateway.upstreams.get(service.name)
        if upstream is None:
            continue
        endpoint = ForwardEndpoint(gateway, upstream)
        app.router.routes.append(ForwardRoute(prefix, endpoint, include_in_schema=False))
        if not prefix.endswith(".json"):
            app.router.routes.append(ForwardRoute(prefix + "/{rest:path}", endpoint, include_in_schema=False))
    app.state.gateway = gateway
    app.state.openapi_cache = OpenAPICache(settings.openapi_cache_ttl_s)


async def start(app: FastAPI) -> None:
    gateway: Gateway = app.state.gateway
    settings = gateway.settings
    if settings.rate_limit_enabled:
        gateway.buckets = SharedTokenBuckets(settings.rate_limit_state_path, settings.rate_limit_table_slots)
    verifier = getattr(app.state, "token_verifier", None)
    gateway.verifier = CachedVerifier(verifier) if verifier is not None else None
    app.state.ops_client = httpx.AsyncClient(trust_env=False, timeout=settings.readiness_timeout_s)
    for upstream in gateway.upstreams.values():
        upstream.open()


async def stop(app: FastAPI) -> None:
    gateway: Gateway = app.state.gateway
    await gateway.aclose()
    if gateway.buckets is not None:
        gateway.buckets.close()
    await app.state.ops_client.aclose()
