"""Request hygiene the kit gives every service: one Authorization header, a body-size limit, no-store.

The body limit is checked against a real uvicorn server (a thread in this process) as well, because chunked
transfer encoding, where no Content-Length announces the size, only exists on a real connection."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, Response
from pydantic import BaseModel

from services.kit.app import create_app
from services.kit.settings import KitSettings
from tests.support.procs import free_port

LIMIT = 4096
router = APIRouter()


class Note(BaseModel):
    text: str


@router.post("/api/v1/notes")
async def post_note(note: Note) -> dict[str, int]:
    return {"length": len(note.text)}


@router.get("/api/v1/me")
async def read_me() -> dict[str, str]:
    return {"email": "someone@example.com"}


@router.get("/api/v1/public")
async def read_public(response: Response) -> dict[str, str]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return {"hello": "world"}


def _app() -> object:
    return create_app(
        KitSettings(service_name="products", max_body_bytes=LIMIT), title="t", description="d", routers=[router]
    )


def _request(method: str, path: str, **kwargs: object) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app())  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(run())


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(
            _app(),  # type: ignore[arg-type]
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def _assert_problem(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status
    assert r.json()["request_id"] == r.headers["x-request-id"]


def test_two_authorization_headers_are_refused_with_400() -> None:
    """With two, a proxy may check one and the service act on the other: the identity verified would not be
    the identity acted for. One header is fine."""
    r = _request("GET", "/api/v1/me", headers=[("Authorization", "Bearer a"), ("Authorization", "Bearer b")])
    _assert_problem(r, 400)
    assert _request("GET", "/api/v1/me", headers={"Authorization": "Bearer a"}).status_code == 200


def test_a_body_announced_larger_than_the_limit_is_413_before_it_is_read() -> None:
    r = _request(
        "POST", "/api/v1/notes", content=b"{" + b" " * LIMIT + b"}", headers={"Content-Type": "application/json"}
    )
    _assert_problem(r, 413)
    assert _request("POST", "/api/v1/notes", json={"text": "x" * (LIMIT // 2)}).json() == {"length": LIMIT // 2}


def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit(server: str) -> None:
    """Inside the cluster nothing sits in front of a service: a client streaming a body with no length must
    still be stopped at the limit, by counting, over a real connection."""

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(64):
            yield b"x" * 1024
        yield b'"}'

    with httpx.Client(base_url=server, timeout=10) as client:
        r = client.post("/api/v1/notes", content=chunks(), headers={"Content-Type": "application/json"})
        assert "content-length" not in r.request.headers
        assert r.request.headers["transfer-encoding"] == "chunked"
        _assert_problem(r, 413)
        small = client.post(
            "/api/v1/notes", content=iter([b'{"text": ', b'"abc"}']), headers={"Content-Type": "application/json"}
        )
        assert small.status_code == 200, small.text


def test_responses_are_not_stored_by_caches_unless_a_route_says_they_are_public() -> None:
    """Profiles, orders, payments and tokens must not linger in a browser or proxy cache; a route that serves
    public data (the JWKS) keeps its own policy. Error bodies are no-store as well."""
    assert _request("GET", "/api/v1/me").headers["cache-control"] == "no-store"
    assert _request("GET", "/api/v1/public").headers["cache-control"] == "public, max-age=60"
    assert _request("GET", "/api/v1/nothing-here").headers["cache-control"] == "no-store"
