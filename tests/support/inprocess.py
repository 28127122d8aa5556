"""The in-process test tier: a service's app served to the test through ``httpx.ASGITransport``, with its
lifespan run (pool, migrations, start-up hooks, background loops) against the session's PostgreSQL.

No process starts and no socket opens, so the inner loop is fast; what needs a real process (a kill, a
timeout, a socket, uvicorn itself) stays with ``tests.support.procs.ServiceProcess``.

The app runs on an event loop of its own, in a thread (an anyio blocking portal), because its database pool
belongs to the loop it was made on: the sync ``client`` and any ``async_client`` (on the test's own loop,
``asyncio.run``) hand each request to that loop. Requests still run concurrently there, so races between
requests race as they would in a served process.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

# Where in-process apps write their logs (the file is shared: they share the process's root logger), next to
# the service processes' logs so every log check of the session reads them too.
LOGFILE = "in-process.log"


async def _serve(transport: httpx.ASGITransport, request: httpx.Request) -> httpx.Response:
    response = await transport.handle_async_request(request)
    # Raw bytes and the app's own headers: the client decodes them once, as it would off a socket.
    body = b"".join([chunk async for chunk in response.aiter_raw()])
    return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(body))


class _PortalTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Hands each request to the app's loop, from a sync client or from an async client on another loop."""

    def __init__(self, portal: BlockingPortal, transport: httpx.ASGITransport) -> None:
        self._portal = portal
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        return self._portal.call(_serve, self._transport, request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return await asyncio.wrap_future(self._portal.start_task_soon(_serve, self._transport, request))


@dataclass
class InProcessService:
    """A service app running in the test process; ``client`` talks to it, ``env`` is its configuration."""

    name: str
    env: dict[str, str]
    app: FastAPI
    transport: _PortalTransport
    client: httpx.Client
    # Its JSON log, shared with the other in-process apps of the session.
    logfile: Path

    @property
    def url(self) -> str:
        return str(self.client.base_url)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An async client for concurrent requests (``asyncio.gather``) from the test's own event loop."""
        return httpx.AsyncClient(transport=self.transport, base_url=self.url, **kwargs)


def _build(name: str, env: dict[str, str]) -> FastAPI:
    """``services.<name>.main.build_app`` with settings read from ``env`` on top of the test's environment,
    exactly what the service process would read."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        # Imported here too: the module makes its own app from the environment when first imported.
        main = importlib.import_module(f"services.{name}.main")
        settings = importlib.import_module(f"services.{name}.settings").Settings()
    app: FastAPI = main.build_app(settings)
    return app


def _log_to(logfile: Path) -> None:
    """Send the JSON log the app set up (``kit.logging.configure_logging``: the root logger to stdout) to
    ``logfile`` instead, where a service process's stdout would go."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(logfile.open("a", encoding="utf-8"))


@contextmanager
def serve_in_process(name: str, env: dict[str, str], logdir: Path) -> Iterator[InProcessService]:
    """Build the service's app, run its lifespan, and yield it with a client; shut it down on exit."""
    app = _build(name, env)
    logfile = logdir / LOGFILE
    _log_to(logfile)
    # The lifespan given to FastAPI(lifespan=...) is the router's lifespan_context (fastapi 0.163.2
    # fastapi/routing.py, _merge_lifespan_context): entering it is what uvicorn does at start-up.
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        # raise_app_exceptions=False: an exception that escapes the app is a bare 500, as from a server
        # (httpx 0.28.1 httpx/_transports/asgi.py); the client address is 127.0.0.1 there.
        transport = _PortalTransport(portal, httpx.ASGITransport(app=app, raise_app_exceptions=False))
        with httpx.Client(transport=transport, base_url=f"http://{name}", timeout=30.0) as client:
            yield InProcessService(name, env, app, transport, client, logfile)


_COMPARED_HEADERS = ("content-type", "www-authenticate", "cache-control", "allow", "retry-after")


def comparable_answer(r: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """What a client may rely on in an answer (status, the headers that carry meaning, the body without its
    request ID, which must be the response's own): for comparing two ways of serving the same request."""
    headers = {name: r.headers[name] for name in _COMPARED_HEADERS if name in r.headers}
    if r.content and r.headers.get("content-type", "").endswith("json"):
        body = r.json()
        assert body.pop("request_id", r.headers["x-request-id"]) == r.headers["x-request-id"]
    else:
        body = r.content
    return r.status_code, headers, body
