"""Small helpers for the users-service tests: unique accounts and client addresses, token forging."""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

PASSWORD = "correct horse battery"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def new_ip() -> str:
    """A client address no other test uses (sent as X-Forwarded-For; the test service trusts loopback),
    so one test's failed logins never throttle another's."""
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | random.getrandbits(64)))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(doc: dict[str, Any]) -> str:
    return b64url(json.dumps(doc, separators=(",", ":")).encode())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Account:
    id: str
    email: str
    password: str
    ip: str = field(default_factory=new_ip)


class Api:
    """A thin httpx wrapper around one users service: its app in process, or a process at a URL (``at``)."""

    def __init__(self, http: httpx.Client, async_client: Callable[..., httpx.AsyncClient]) -> None:
        self.http = http
        self.async_client = async_client  # for concurrent requests: ``async with api.async_client() as c``

    @classmethod
    def at(cls, url: str) -> Api:
        return cls(httpx.Client(base_url=url, timeout=15.0), lambda **kwargs: httpx.AsyncClient(base_url=url, **kwargs))

    def signup(self, email: str | None = None, password: str = PASSWORD, name: str = "Test User") -> Account:
        email = email or unique_email()
        r = self.http.post("/api/v1/users", json={"email": email, "password": password, "name": name})
        assert r.status_code == 201, r.text
        return Account(r.json()["id"], email, password)

    def login(self, email: str, password: str, ip: str | None = None) -> httpx.Response:
        return self.http.post(
            "/api/v1/sessions", json={"email": email, "password": password}, headers={"X-Forwarded-For": ip or new_ip()}
        )

    def tokens(self, account: Account) -> dict[str, Any]:
        r = self.login(account.email, account.password, account.ip)
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def me(self, token: str) -> httpx.Response:
        return self.http.get("/api/v1/users/me", headers=bearer(token))

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.http.post("/api/v1/sessions/refresh", json={"refresh_token": refresh_token})


def assert_problem(r: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """Every error is an RFC 9457 problem with the request ID; no stack traces."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= body.keys(), body
    assert body["status"] == status
    assert body["request_id"] == r.headers["x-request-id"]
    if kind is not None:
        assert body["type"].endswith(f"/{kind}"), body
    assert "Traceback" not in r.text
    return body


def db_fetch(database_url: str, query: str, *args: Any) -> list[Any]:
    """Run one parameterised statement against a service's database (to inspect, or to age rows)."""
    import asyncio

    import asyncpg

    async def run() -> list[Any]:
        conn = await asyncpg.connect(database_url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())
