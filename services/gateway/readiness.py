"""``/readyz/upstreams``: every routed upstream's own readiness at a glance, for dashboards, tests and
operators.

The gateway's own ``/readyz`` is the kit's: local to the process (it answers once start-up has opened the
upstream sessions and the rate-limit table). It never waits for an upstream: one unready service would
otherwise take every gateway replica out of rotation and the whole API down with it. Each service's
readiness is its own probe's business; the gateway answers for that service's routes with fast problems
(timeouts, circuit breaker) while it is away.
"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.gateway.forward import Gateway
from services.kit.errors import Problem


async def _upstream_ready(client: httpx.AsyncClient, base_url: str, wait_s: float) -> str | None:
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
    reasons = await asyncio.gather(
        *(_upstream_ready(client, gateway.upstreams[name].base_url, timeout) for name in names)
    )
    upstreams = {name: reason or "ready" for name, reason in zip(names, reasons, strict=True)}
    failing = sorted(name for name, state in upstreams.items() if state != "ready")
    if failing:
        raise Problem(
            503,
            "Not ready: " + ", ".join(f"{n} ({upstreams[n]})" for n in failing),
            kind="not-ready",
            failing=failing,
            upstreams=upstreams,
        )
    return JSONResponse({"status": "ready", "upstreams": upstreams})
