"""``uvicorn services.gateway.main:app`` (``--workers N``: the rate limits are shared by the workers)."""

from __future__ import annotations

from services.gateway import api
from services.gateway.proxy import Gateway, build_upstreams
from services.gateway.settings import Settings
from services.kit.app import create_app


def build_app(settings: Settings | None = None) -> api.EdgeApp:
    settings = settings or Settings()
    app = create_app(
        settings,
        title="API gateway",
        description="Routes the public API to the services; verifies tokens, rate-limits, retries safely and "
                    "trips circuit breakers.",
        routers=[],
        on_startup=[api.start],
        on_shutdown=[api.stop],
    )
    gateway = Gateway(settings, buckets=None, verifier=None, upstreams=build_upstreams(settings))
    api.install(app, settings, gateway)
    return api.EdgeApp(app, settings, gateway)


app = build_app()
