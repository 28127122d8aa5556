"""Calls to other services: httpx with a pooled connection per callee, a timeout on every call, the
service credential, and the request ID and W3C trace context passed on."""

from __future__ import annotations

from typing import Any

import httpx

from services import catalog
from services.kit.auth import ServiceTokenIssuer
from services.kit.context import request_id_var, traceparent_var
from services.kit.settings import KitSettings


def service_url(settings: KitSettings, name: str) -> str:
    service = catalog.get(name)
    if name in settings.service_urls:
        return settings.service_urls[name]
    return settings.service_url_template.format(name=service.name, port=service.port)


class ServiceClient:
    def __init__(self, settings: KitSettings, callee: str, issuer: ServiceTokenIssuer | None, *,
                 timeout: float = 5.0, max_connections: int = 100) -> None:
        if callee not in catalog.get(settings.service_name).calls:
            raise ValueError(f"the catalog does not allow {settings.service_name} to call {callee}")
        if issuer is None:
            raise ValueError(f"{settings.service_name} calls {callee} but has no SERVICE_PRIVATE_KEY")
        self.callee = callee
        self._issuer = issuer
        self._client = httpx.AsyncClient(
            base_url=service_url(settings, callee),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def _headers(self) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self._issuer.token_for(self.callee)}",
                   "x-request-id": request_id_var.get()}
        traceparent = traceparent_var.get()
        if traceparent:
            headers["traceparent"] = traceparent
        return headers

    async def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                      **kwargs: Any) -> httpx.Response:
        # Call-specific headers (e.g. Idempotency-Key) are added; the credential and context win.
        return await self._client.request(method, path, headers={**(headers or {}), **self._headers()}, **kwargs)

    async def aclose(self) -> None:
        await self._client.aclose()
