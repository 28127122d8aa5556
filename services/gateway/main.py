"""``uvicorn services.gateway.main:app`` (``--workers N``: the rate limits are shared by the workers)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.gateway import openapi
from services.gateway.edge import EdgeApp
from services.gateway.forward import Gateway
from services.gateway.ratelimit import RateLimits, SharedTokenBuckets
from services.gateway.readiness import upstreams_status
from services.gateway.settings import Settings
from services.gateway.upstream import open_upstreams, upstream_tls
from services.kit.app import create_app
from services.kit.client_address import ClientAddress


async def _start(app: FastAPI) -> None:
    """After the kit's start-up (which made the token verifier when a JWKS is configured): open the
    upstream sessions and the bucket table, and put the complete :class:`Gateway` where the edge finds it."""
    settings: Settings = app.state.settings
    limits = (
        RateLimits(SharedTokenBuckets(settings.rate_limit_state_path, settings.rate_limit_table_slots), settings)
        if settings.rate_limit_enabled
        else None
    )
    app.state.gateway = Gateway(
        settings=settings,
        upstreams=open_upstreams(settings),
        limits=limits,
        verifier=getattr(app.state, "token_verifier", None),
        client_address=ClientAddress(settings.trusted_proxies),
    )
    app.state.ops_client = httpx.AsyncClient(
        trust_env=False, timeout=settings.readiness_timeout_s, verify=upstream_tls(settings)
    )


async def _stop(app: FastAPI) -> None:
    gateway: Gateway = app.state.gateway
    await gateway.aclose()
    await app.state.ops_client.aclose()


def build_app(settings: Settings | None = None) -> EdgeApp:
    settings = settings or Settings()
    app = create_app(
        settings,
        title="API gateway",
        description="Routes the public API to the services; verifies tokens, rate-limits, retries safely and "
        "trips circuit breakers.",
        routers=[],
        openapi_url=None,  # its /openapi.json is the merged public document
        on_startup=[_start],
        on_shutdown=[_stop],
    )
    openapi.install_document(app, settings.openapi_cache_ttl_s)
    openapi.install_reference(app)
    app.add_route("/readyz/upstreams", upstreams_status, include_in_schema=False)
    app.router.redirect_slashes = False  # never answer with a redirect the upstream did not ask for
    return EdgeApp(app, settings)


app = build_app()
