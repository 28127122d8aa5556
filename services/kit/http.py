"""Calls to other services: a pooled connection per callee, a timeout on every call, the service
credential, and the request ID and W3C trace context passed on.

aiohttp rather than httpx: orders makes three calls per checkout, and httpx's connection pool walks every
pooled connection for every queued request, which cost several milliseconds of CPU per order under load
and made it the checkout's bottleneck on two cores (measured; see services/gateway/README.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from services import catalog
from services.kit.auth import ServiceTokenIssuer
from services.kit.context import request_id_var, traceparent_var
from services.kit.settings import KitSettings


def service_url(settings: KitSettings, name: str) -> str:
    service = catalog.get(name)
    if name in settings.service_urls:
        return settings.service_urls[name]
    return settings.service_url_template.format(name=service.name, port=service.port)


class ServiceCallError(Exception):
    """The call failed. ``sent`` is False only when the request certainly never reached the peer."""

    def __init__(self, sent: bool, why: str) -> None:
        super().__init__(why)
        self.sent = sent


@dataclass(frozen=True)
class ServiceResponse:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class ServiceClient:
    """One pooled aiohttp session per callee; the catalog decides who may call whom."""

    def __init__(self, settings: KitSettings, callee: str, issuer: ServiceTokenIssuer | None, *,
                 timeout: float, max_connections: int) -> None:
        if callee not in catalog.callees_of(settings.service_name):
            raise ValueError(f"the catalog does not allow {settings.service_name} to call {callee}")
        if issuer is None:
            raise ValueError(f"{settings.service_name} calls {callee} but has no SERVICE_PRIVATE_KEY")
        self.callee = callee
        self._issuer = issuer
        self._base = service_url(settings, callee).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 2.0))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=30),
            timeout=self._timeout, raise_for_status=False, auto_decompress=True)

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {**(extra or {}), "authorization": f"Bearer {self._issuer.token_for(self.callee)}",
                   "x-request-id": request_id_var.get()}
        traceparent = traceparent_var.get()
        if traceparent:
            headers["traceparent"] = traceparent
        return headers

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
                      headers: dict[str, str] | None = None) -> ServiceResponse:
        try:
            async with self._session.request(method, self._base + path, json=json, params=params,
                                             headers=self._headers(headers)) as response:
                return ServiceResponse(response.status, await response.read())
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ServiceCallError(False, type(exc).__name__) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceCallError(True, type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self._session.close()
