"""The ASGI application uvicorn runs: the catalog's public prefixes go straight to forwarding, everything
else (the gateway's own routes) and the lifespan to the FastAPI app.

The forwarded path skips FastAPI's routing, exception and telemetry layers on purpose: they cost more per
request than the forwarding itself, and the gateway's throughput is the benchmark's subject.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from services.gateway.forward import Gateway
from services.gateway.paths import PrefixRoutes
from services.gateway.settings import Settings
from services.kit.app import ObservabilityMiddleware
from services.kit.errors import PROBLEM_JSON, Problem, problem_body


class EdgeApp:
    """Requests under a routed public prefix go to the forwarding, wrapped in the kit's observability
    middleware (request ID, trace context, metrics by route template, access log) and a problem handler;
    everything else (``/healthz``, ``/readyz``, ``/readyz/upstreams``, ``/metrics``, the OpenAPI document
    and reference, 404s) and the lifespan go to the FastAPI app, whose start-up puts the
    :class:`Gateway` in ``app.state.gateway``."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.state = app.state
        self._routes = PrefixRoutes(settings.upstreams)
        self._forward = ObservabilityMiddleware(
            self._dispatch, service=settings.service_name, base_uri=settings.problem_base_uri
        )
        self._base_uri = settings.problem_base_uri

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            matched = self._routes.match(scope["path"])
            if matched is not None:
                scope["route"], scope["upstream"] = matched
                await self._forward(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway: Gateway = self.state.gateway
        try:
            await gateway.forward(gateway.upstreams[scope["upstream"]], scope, receive, send)
        except Problem as problem:
            body = problem_body(
                self._base_uri,
                problem.status,
                problem.detail,
                scope["path"],
                kind=problem.kind,
                title=problem.title,
                **problem.extensions,
            )
            response = JSONResponse(body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON)
            await response(scope, receive, send)
