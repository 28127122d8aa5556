"""The storefront's client of the public API, typed with the services' own public response models.

It is an ordinary API client: it goes through the gateway's public routes and holds no service key. Every
non-2xx answer becomes ``ApiError`` (the problem document's kind, title and detail), and a gateway that
cannot be reached or times out becomes ``ApiUnavailable``: the pages turn both into a message, never a
stack trace.
"""

from __future__ import annotations

import json
import ssl
import uuid
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from services.orders.models import Order, OrderPage
from services.products.models import CategoryList, Product, ProductPage
from services.search.models import SearchResults
from services.users.models import TokenPair, UserOut

M = TypeVar("M", bound=BaseModel)


class ApiUnavailable(Exception):
    """The API did not answer (connection refused, timeout, or a body that is not its contract)."""


class ApiError(Exception):
    """A problem+json answer from the API."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: str | None = None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        type_uri = str(body.get("type", ""))
        self.kind = type_uri.rstrip("/").rsplit("/", 1)[-1] if type_uri else "unknown"
        self.title = str(body.get("title", "Error"))
        self.detail = str(body.get("detail", "")) if body.get("detail") else ""
        super().__init__(f"{status} {self.kind}: {self.detail or self.title}")


class ShopClient:
    """One instance per process; every call says whose request it makes (``caller``)."""

    def __init__(self, base_url: str, timeout_s: float, tls: ssl.SSLContext | None = None) -> None:
        # aiohttp rather than httpx, as in the gateway (services/gateway/README.md, "HTTP client"): httpcore's
        # pool bookkeeping was a third of the storefront's CPU per page. Opened lazily: a session belongs to
        # the event loop that serves the pages.
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None
        # The gateway's certificate is verified with this context and ours presented (one machine); None:
        # aiohttp's default verification.
        self._tls: ssl.SSLContext | bool = tls or True

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=4, ssl=self._tls),
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _call(
        self,
        method: str,
        path: str,
        model: type[M] | None,
        *,
        caller: Caller,
        token: str | None = None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> M | None:
        sent = dict(caller.headers())
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if headers:
            sent.update(headers)
        clean = {k: str(v) for k, v in (params or {}).items() if v not in (None, "")}
        try:
            async with self._session().request(
                method, self._base + path, json=json_body, params=clean, headers=sent
            ) as response:
                status, content = response.status, await response.read()
                retry_after = response.headers.get("retry-after")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        if status >= 400:
            try:
                body = json.loads(content)
            except ValueError:
                body = {}
            if not isinstance(body, dict) or "type" not in body:
                # Not the API's problem document (a proxy's page, a crash): the API is not answering.
                raise ApiUnavailable(f"{method} {path}: HTTP {status} without a problem body")
            raise ApiError(status, body, retry_after)
        if model is None:
            return None
        try:
            return model.model_validate_json(content)
        except ValidationError as exc:
            raise ApiUnavailable(f"{method} {path}: the answer does not match the contract") from exc

    async def _get(self, path: str, model: type[M], caller: Caller, **kw: Any) -> M:
        result = await self._call("GET", path, model, caller=caller, **kw)
        assert result is not None
        return result

    async def products(self, caller: Caller, *, category: str | None, cursor: str | None, limit: int) -> ProductPage:
        return await self._get(
            "/api/v1/products", ProductPage, caller, params={"category": category, "cursor": cursor, "limit": limit}
        )

    async def categories(self, caller: Caller) -> CategoryList:
        return await self._get("/api/v1/categories", CategoryList, caller)

    async def product(self, caller: Caller, product_id: uuid.UUID) -> Product:
        return await self._get(f"/api/v1/products/{product_id}", Product, caller)

    async def search(self, caller: Caller, q: str, *, category: str | None, limit: int) -> SearchResults:
        return await self._get(
            "/api/v1/search", SearchResults, caller, params={"q": q, "category": category, "limit": limit}
        )

    async def sign_up(self, caller: Caller, *, email: str, password: str, name: str) -> UserOut:
        user = await self._call(
            "POST",
            "/api/v1/users",
            UserOut,
            caller=caller,
            json_body={"email": email, "password": password, "name": name},
        )
        assert user is not None
        return user

    async def log_in(self, caller: Caller, *, email: str, password: str) -> TokenPair:
        pair = await self._call(
            "POST", "/api/v1/sessions", TokenPair, caller=caller, json_body={"email": email, "password": password}
        )
        assert pair is not None
        return pair

    async def refresh(self, caller: Caller, refresh_token: str) -> TokenPair:
        pair = await self._call(
            "POST", "/api/v1/sessions/refresh", TokenPair, caller=caller, json_body={"refresh_token": refresh_token}
        )
        assert pair is not None
        return pair

    async def log_out(self, caller: Caller, token: str) -> None:
        await self._call("DELETE", "/api/v1/sessions/current", None, caller=caller, token=token)

    async def me(self, caller: Caller, token: str) -> UserOut:
        return await self._get("/api/v1/users/me", UserOut, caller, token=token)

    async def place_order(
        self, caller: Caller, token: str, *, lines: dict[uuid.UUID, int], card: dict[str, Any], idempotency_key: str
    ) -> Order:
        body = {
            "items": [{"product_id": str(pid), "quantity": qty} for pid, qty in lines.items()],
            "payment": {"card": card},
        }
        order = await self._call(
            "POST",
            "/api/v1/orders",
            Order,
            caller=caller,
            token=token,
            json_body=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        assert order is not None
        return order

    async def orders(self, caller: Caller, token: str, *, cursor: str | None, limit: int) -> OrderPage:
        return await self._get(
            "/api/v1/orders", OrderPage, caller, token=token, params={"cursor": cursor, "limit": limit}
        )

    async def order(self, caller: Caller, token: str, order_id: uuid.UUID) -> Order:
        return await self._get(f"/api/v1/orders/{order_id}", Order, caller, token=token)

    async def cancel(self, caller: Caller, token: str, order_id: uuid.UUID) -> Order:
        order = await self._call("POST", f"/api/v1/orders/{order_id}/cancel", Order, caller=caller, token=token)
        assert order is not None
        return order


class Caller:
    """Who a call is made for: the shopper's request id, and their address as a proxy passes it on.

    The storefront is a proxy in the gateway's eyes: it appends the address it saw to X-Forwarded-For, and
    the gateway believes the chain only as far as its trusted proxies reach (its rate limits and the login
    throttle stay per shopper, not one bucket for the whole shop).
    """

    def __init__(self, request_id: str, forwarded_for: str | None, peer: str | None) -> None:
        self.request_id = request_id
        chain = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
        if peer:
            chain.append(peer)
        self.forwarded_for = ", ".join(chain[-8:])

    def headers(self) -> dict[str, str]:
        sent = {"X-Request-ID": self.request_id}
        if self.forwarded_for:
            sent["X-Forwarded-For"] = self.forwarded_for
        return sent
