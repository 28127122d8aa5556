"""Calls to other services: a pooled connection per callee, a timeout on every call, the service
credential, and the request ID and W3C trace context passed on. :meth:`ServiceClient.call` reads the answer
under the callee's contract (``services/<callee>/contract.py``): a model, or a named error.

aiohttp rather than httpx: orders makes three calls per checkout, and httpx's connection pool walks every
pooled connection for every queued request, which cost several milliseconds of CPU per order under load
and made it the checkout's bottleneck on two cores (measured; see services/gateway/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from services import catalog
from services.kit import tls
from services.kit.auth import ServiceTokenIssuer
from services.kit.context import request_id_var, traceparent_var
from services.kit.errors import NamedProblem, ProblemBody
from services.kit.settings import KitSettings

M = TypeVar("M", bound=BaseModel)


def service_url(settings: KitSettings, name: str) -> str:
    service = catalog.get(name)
    if name in settings.service_urls:
        return settings.service_urls[name]
    return settings.service_url_template.format(name=service.name, port=service.port)


class ServiceCallError(Exception):
    """The call got no usable answer: no connection, a timeout, a 5xx. ``sent`` is False only when the
    request certainly never reached the peer (so it certainly had no effect)."""

    def __init__(self, callee: str, sent: bool, why: str) -> None:
        super().__init__(f"{callee}: {why}")
        self.callee = callee
        self.sent = sent


class UnexpectedAnswer(ServiceCallError):
    """The peer answered outside its contract for this call: a status or problem kind the call does not
    declare, or a body that does not match the declared model. What it did is unknown, hence ``sent``."""

    def __init__(self, callee: str, status: int, what: str) -> None:
        super().__init__(callee, True, f"unexpected answer {status} ({what})")
        self.status = status


@dataclass(frozen=True)
class ServiceResponse:
    status_code: int
    content: bytes


class ServiceClient:
    """One pooled aiohttp session per callee; the catalog decides who may call whom."""

    def __init__(
        self,
        settings: KitSettings,
        callee: str,
        issuer: ServiceTokenIssuer | None,
        *,
        timeout: float,
        max_connections: int,
    ) -> None:
        if callee not in catalog.callees_of(settings.service_name):
            raise ValueError(f"the catalog does not allow {settings.service_name} to call {callee}")
        if issuer is None:
            raise ValueError(f"{settings.service_name} calls {callee} but has no SERVICE_PRIVATE_KEY")
        self.callee = callee
        self._issuer = issuer
        self._base = service_url(settings, callee).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 2.0))
        identity = tls.identity(settings)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_connections,
                keepalive_timeout=30,
                # One machine: the callee is verified against the local CA and sees our certificate.
                ssl=identity.client_context() if identity else True,
            ),
            timeout=self._timeout,
            raise_for_status=False,
            auto_decompress=True,
        )

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {
            **(extra or {}),
            "authorization": f"Bearer {self._issuer.token_for(self.callee)}",
            "x-request-id": request_id_var.get(),
        }
        traceparent = traceparent_var.get()
        if traceparent:
            headers["traceparent"] = traceparent
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ServiceResponse:
        try:
            async with self._session.request(
                method, self._base + path, json=json, params=params, headers=self._headers(headers)
            ) as response:
                return ServiceResponse(response.status, await response.read())
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ServiceCallError(self.callee, False, type(exc).__name__) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceCallError(self.callee, True, type(exc).__name__) from exc

    async def call(
        self,
        method: str,
        path: str,
        answer: type[M],
        *,
        errors: Iterable[type[NamedProblem]] = (),
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> M:
        """A call under a contract: a 2xx body as ``answer``, a problem body as the named error of ``errors``
        with its status and kind, anything else :class:`UnexpectedAnswer` (a 5xx :class:`ServiceCallError`)."""
        response = await self.request(method, path, json=json, params=params, headers=headers)
        status = response.status_code
        if status >= 500:
            raise ServiceCallError(self.callee, True, f"status {status}")
        if 200 <= status < 300:
            try:
                return answer.model_validate_json(response.content)
            except ValidationError as exc:
                raise UnexpectedAnswer(self.callee, status, f"{exc.error_count()} invalid fields") from None
        raise self._named_error(status, response.content, errors)

    def _named_error(self, status: int, content: bytes, errors: Iterable[type[NamedProblem]]) -> Exception:
        try:
            body = ProblemBody.model_validate_json(content)
        except ValidationError:
            return UnexpectedAnswer(self.callee, status, "not a problem body")
        for error in errors:
            if error.status == status and error.kind == body.kind:
                try:
                    return error.received(body)
                except ValidationError as exc:  # its text quotes the values: count them only
                    return UnexpectedAnswer(self.callee, status, f"{body.kind}: {exc.error_count()} invalid members")
                except ValueError as exc:  # a member missing
                    return UnexpectedAnswer(self.callee, status, f"{body.kind}: {exc}")
        return UnexpectedAnswer(self.callee, status, body.kind)

    async def aclose(self) -> None:
        await self._session.close()
