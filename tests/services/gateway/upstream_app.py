"""A small real upstream for gateway tests: it echoes what it received and can be told to be slow, fail,
redirect or set cookies, which the real services cannot be made to do on demand.

Base URLs may carry a ``/_svc/<name>`` prefix (``SERVICE_URLS`` for the gateway), so one process stands in
for every service and still says which service a request was routed to. Hits are counted per
``X-Request-ID`` so a test can tell how many attempts reached the upstream.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

HITS: Counter[str] = Counter()

PUBLIC_SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "stand-in", "version": "1"},
    "paths": {
        "/api/v1/products/{product_id}": {
            "get": {
                "operationId": "get_product",
                "parameters": [{"name": "product_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Product"}}},
                    }
                },
            }
        },
        "/internal/v1/reservations": {
            "post": {
                "operationId": "reserve",
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReservationRequest"}}}
                },
                "responses": {"201": {"description": "reserved"}},
            }
        },
        "/healthz": {"get": {"operationId": "healthz", "responses": {"200": {"description": "ok"}}}},
    },
    "components": {
        "schemas": {
            "Product": {"type": "object", "properties": {"id": {"type": "string"}}},
            "ReservationRequest": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        }
    },
}


def _service_and_path(path: str) -> tuple[str | None, str]:
    if path.startswith("/_svc/"):
        name, _, rest = path[len("/_svc/") :].partition("/")
        return name, "/" + rest
    return None, path


async def handle(request: Request) -> Response:
    service, path = _service_and_path(request.url.path)
    rid = request.headers.get("x-request-id", "")
    if path.startswith("/__hits/"):
        return JSONResponse({"hits": HITS[path[len("/__hits/") :]]})
    if path == "/readyz":
        return JSONResponse({"status": "ready"})
    if path == "/openapi.json":
        return JSONResponse(PUBLIC_SCHEMA)
    if path == "/.well-known/jwks.json" and service in (None, "users"):
        return Response(os.environ.get("STANDIN_JWKS", '{"keys": []}'), media_type="application/json")
    HITS[rid] += 1
    q = request.query_params
    if "sleep" in q:
        await asyncio.sleep(float(q["sleep"]))
    if "stall_body" in q:  # the status line and headers at once, the (declared) body only after a while
        delay = float(q["stall_body"])

        async def late() -> AsyncIterator[bytes]:
            await asyncio.sleep(delay)
            yield b"{}"

        return StreamingResponse(late(), media_type="application/json", headers={"content-length": "2"})
    if "empty" in q:
        return Response(status_code=int(q["empty"]))
    if "size" in q:
        return Response(bytes(i % 251 for i in range(int(q["size"]))), media_type="application/octet-stream")
    if "status" in q:
        status = int(q["status"])
        return JSONResponse(
            {
                "type": "about:blank",
                "title": "told to fail",
                "status": status,
                "detail": "x",
                "instance": path,
                "request_id": rid,
            },
            status_code=status,
            media_type="application/problem+json",
        )
    if "redirect" in q:
        return Response(
            status_code=307,
            headers={
                "location": f"{request.base_url}_svc/{service}{q['redirect']}"
                if service
                else f"{request.base_url}{q['redirect'][1:]}"
            },
        )
    body = await request.body()
    headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]]
    response = JSONResponse(
        {
            "service": service,
            "method": request.method,
            "path": path,
            "query": request.url.query,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }
    )
    if "set_cookie" in q:
        response.set_cookie("upstream_session", q["set_cookie"])
    return response


app = Starlette(
    routes=[
        Route("/{path:path}", handle, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    ]
)
