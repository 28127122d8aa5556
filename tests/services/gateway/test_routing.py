"""Routing, path hygiene, header handling, readiness and the merged OpenAPI document, through a real
gateway process in front of the stand-in upstream."""

from __future__ import annotations

import http.client
import json
import re
import time
from typing import Any

import httpx
import pytest

from services import catalog
from tests.services.gateway.conftest import GatewayFactory, hits, rid, standin_urls
from tests.support.procs import ServiceProcess, free_port


def raw_request(
    base: str, method: str, target: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Send the request target byte for byte (httpx would normalise dot segments away)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def echo(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def upstream_headers(body: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        out.setdefault(name, []).append(value)
    return out


@pytest.mark.parametrize(("prefix", "service"), [(p, s.name) for p, s in catalog.route_table()])
def test_every_public_prefix_reaches_its_own_service(gateway: ServiceProcess, prefix: str, service: str) -> None:
    """Each catalog prefix goes to the service that owns it (longest prefix first), path and query intact:
    a wrong route would send users' passwords to the products service."""
    paths = [prefix] if prefix.endswith(".json") else [prefix, f"{prefix}/some-id/sub?x=1&y=%C3%A9"]
    for path in paths:
        body = echo(httpx.get(gateway.url + path))
        if path == "/.well-known/jwks.json":  # the stand-in serves the JWKS only as the users service
            assert body["keys"]
            continue
        assert body["service"] == service
        assert body["path"] == path.split("?")[0]
        assert body["query"] == (path.split("?")[1] if "?" in path else "")


def test_unknown_prefixes_and_near_misses_are_404(gateway: ServiceProcess, standin: ServiceProcess) -> None:
    """Only exact prefixes route: ``/api/v1/productsX`` or ``/api/v2/...`` must not reach a service."""
    for path in ("/api/v1/productsX", "/api/v2/products", "/api/v1", "/", "/API/V1/products", "/.well-known/x"):
        request_id = rid()
        r = httpx.get(gateway.url + path, headers={"x-request-id": request_id})
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json"
        assert hits(standin, request_id) == 0


INTERNAL_TRICKS = [
    "/internal",
    "/internal/",
    "/internal/v1/changes",
    "/INTERNAL/",
    "/Internal/v1/changes",
    "/%69nternal/v1/changes",
    "/%49NTERNAL/v1/changes",
    "//internal",
    "//internal/v1/changes",
    "/api/v1/../../internal/v1/changes",
    "/api/v1/products/../../../internal/v1/changes",
    "/api/v1/products/%2e%2e/%2e%2e/%2e%2e/internal/v1/changes",
    "/api/v1/products/..%2f..%2f..%2finternal",
    "/api/v1/products/%2F..%2F..%2F..%2Finternal",
    "/api/v1/products/internal",
    "/api/v1/products/internal/v1",
    "/api/v1/products/INTERNAL",
    "/api/v1/products//internal",
    "/api/v1/products/./internal",
    "/api/v1/products/%252e%252e/%252e%252e/internal",
    "/api/v1/products/..;/..;/internal",
    "/api/v1/products\\..\\..\\internal",
    "/api/v1/products/%00/../internal",
    "http://127.0.0.1/internal/v1/changes",
]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
def test_internal_routes_are_unreachable_whatever_the_encoding(
    gateway: ServiceProcess, standin: ServiceProcess, method: str
) -> None:
    """``/internal/*`` is service-to-service only: no spelling, encoding, dot-segment or method trick gets a
    request there through the gateway, and the answer is a plain 404 problem."""
    for target in INTERNAL_TRICKS:
        request_id = rid()
        status, headers, body = raw_request(
            gateway.url,
            method,
            target,
            {"X-Request-ID": request_id},
            b"{}" if method in ("POST", "PUT", "PATCH") else None,
        )
        assert status in (400, 404), (method, target, status)
        if status == 404 and method != "HEAD":
            assert headers["content-type"] == "application/problem+json", target
            assert json.loads(body)["status"] == 404
        assert hits(standin, request_id) == 0, (method, target)


def test_request_id_and_trace_context_reach_the_upstream(gateway: ServiceProcess) -> None:
    """The caller's X-Request-ID is the upstream's (one id across the hops for log correlation), and the
    W3C trace id carries over with the gateway as the new parent span."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    incoming = f"00-{trace_id}-00f067aa0ba902b7-01"
    r = httpx.get(gateway.url + "/api/v1/products/x", headers={"x-request-id": "req-123", "traceparent": incoming})
    seen = upstream_headers(echo(r))
    assert seen["x-request-id"] == ["req-123"]
    assert r.headers.get_list("x-request-id") == ["req-123"]
    (traceparent,) = seen["traceparent"]
    version, seen_trace, parent, flags = traceparent.split("-")
    assert (version, seen_trace, flags) == ("00", trace_id, "01")
    assert parent != "00f067aa0ba902b7"
    assert re.fullmatch(r"[0-9a-f]{16}", parent)


def test_trace_context_and_request_id_are_generated_when_absent(gateway: ServiceProcess) -> None:
    """Without a traceparent (or with a malformed one) the gateway starts a trace; without a sane request
    id it makes one, and the client sees the same id the upstream logged."""
    r = httpx.get(gateway.url + "/api/v1/products/x", headers={"traceparent": "garbage", "x-request-id": "bad id!"})
    seen = upstream_headers(echo(r))
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", seen["traceparent"][0])
    assert seen["x-request-id"] == [r.headers["x-request-id"]]
    assert r.headers["x-request-id"] != "bad id!"


def test_hop_by_hop_headers_are_stripped_and_forwarding_headers_set(gateway: ServiceProcess) -> None:
    """Connection-scoped headers (and any the client names in Connection) stop at the gateway; the
    upstream learns the client address and scheme from X-Forwarded-* set by the gateway, not the client."""
    r = httpx.get(
        gateway.url + "/api/v1/products/x",
        headers={
            "connection": "keep-alive, x-private-hop",
            "x-private-hop": "secret",
            "keep-alive": "timeout=5",
            "te": "trailers",
            "proxy-authorization": "Basic Zm9vOmJhcg==",
            "x-forwarded-for": "6.6.6.6",
            "x-forwarded-proto": "https",
            "forwarded": "for=6.6.6.6",
            "x-end-to-end": "kept",
        },
    )
    seen = upstream_headers(echo(r))
    for name in ("connection", "x-private-hop", "keep-alive", "te", "proxy-authorization", "forwarded"):
        assert name not in seen, name
    assert seen["x-forwarded-for"] == ["127.0.0.1"]  # the peer is not a trusted proxy here
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-end-to-end"] == ["kept"]
    assert len(r.headers.get_list("date")) == 1
    assert len(r.headers.get_list("server")) <= 1


def test_upstream_cookies_are_never_replayed_to_other_requests(gateway: ServiceProcess) -> None:
    """A Set-Cookie answering one client goes to that client only; the gateway keeps no cookie jar, so the
    next request (maybe another user's) does not carry it upstream."""
    r = httpx.get(gateway.url + "/api/v1/users/x?set_cookie=alice-session")
    assert "alice-session" in r.headers["set-cookie"]
    seen = upstream_headers(echo(httpx.get(gateway.url + "/api/v1/users/y")))
    assert "cookie" not in seen


def test_upstream_redirects_do_not_leak_the_upstream_address(gateway: ServiceProcess, standin: ServiceProcess) -> None:
    """A Location pointing at the upstream's own address is made relative, so clients never learn (or
    follow a link to) an internal host."""
    r = httpx.get(gateway.url + "/api/v1/products/x?redirect=/api/v1/products/y")
    assert r.status_code == 307
    assert r.headers["location"] == "/api/v1/products/y"


def test_request_bodies_are_forwarded_intact(gateway: ServiceProcess) -> None:
    """POST bodies, small and streamed (chunked, larger than the buffering threshold), arrive unchanged."""
    small = json.dumps({"name": "ü" * 10}).encode()
    body = echo(
        httpx.post(gateway.url + "/api/v1/products", content=small, headers={"content-type": "application/json"})
    )
    assert body["body"].encode() == small
    assert body["method"] == "POST"
    big = b"x" * 200_000

    def chunks() -> Any:
        for i in range(0, len(big), 50_000):
            yield big[i : i + 50_000]

    body = echo(httpx.put(gateway.url + "/api/v1/products/x/stock", content=chunks()))
    assert len(body["body"]) == len(big)


def test_response_bodies_small_large_and_empty_arrive_intact(gateway: ServiceProcess) -> None:
    """Large answers are streamed (not buffered), empty ones (204, HEAD) stay empty, bytes are unchanged."""
    size = 300_000
    r = httpx.get(gateway.url + f"/api/v1/products/x?size={size}")
    assert r.status_code == 200
    assert r.content == bytes(i % 251 for i in range(size))
    r = httpx.delete(gateway.url + "/api/v1/products/x?empty=204")
    assert r.status_code == 204
    assert r.content == b""
    r = httpx.head(gateway.url + "/api/v1/products/x?size=1000")
    assert r.status_code == 200
    assert r.headers["content-length"] == "1000"
    assert r.content == b""


def test_oversized_bodies_are_refused_with_413(gateway: ServiceProcess, standin: ServiceProcess) -> None:
    """A body above MAX_BODY_BYTES never reaches a service (cheap protection against memory abuse)."""
    request_id = rid()
    r = httpx.post(gateway.url + "/api/v1/products", content=b"x" * 1_100_000, headers={"x-request-id": request_id})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert hits(standin, request_id) == 0


def test_readiness_is_local_while_the_upstreams_route_names_the_failing_ones(
    start_gateway: GatewayFactory, standin: ServiceProcess
) -> None:
    """One unready service must not take the gateway out of rotation (every replica NotReady, the edge and the
    health checks failing over: the whole API down for one service). /readyz stays 200; the routes of the
    services that answer keep working; /readyz/upstreams lists exactly the failing upstreams, quickly
    (parallel checks with a short timeout), for dashboards and operators."""
    urls = standin_urls(standin)
    urls["orders"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    urls["search"] = f"http://127.0.0.1:{free_port()}"
    gw = start_gateway(service_urls=urls, READINESS_TIMEOUT_S="0.5")
    ready = httpx.get(gw.url + "/readyz")
    assert ready.status_code == 200, ready.text
    assert httpx.get(gw.url + "/api/v1/products/abc").status_code == 200  # the stand-in answers
    assert httpx.get(gw.url + "/api/v1/search", params={"q": "x"}).status_code in (502, 503)

    started = time.monotonic()
    r = httpx.get(gw.url + "/readyz/upstreams")
    assert time.monotonic() - started < 1.5
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["failing"] == ["orders", "search"]
    assert problem["type"].endswith("/not-ready")
    assert problem["upstreams"]["products"] == "ready"
    assert problem["upstreams"]["orders"] != "ready"
    ok = start_gateway(service_urls=standin_urls(standin))
    all_ready = httpx.get(ok.url + "/readyz/upstreams")
    assert all_ready.status_code == 200
    assert set(all_ready.json()["upstreams"].values()) == {"ready"}


def test_merged_openapi_has_public_paths_only(gateway: ServiceProcess) -> None:
    """The published document describes the public API only: no /internal path, no schema only internal
    routes use, and every operation documents the answers the gateway itself can give."""
    doc = httpx.get(gateway.url + "/openapi.json").json()
    assert doc["paths"], doc
    assert not [p for p in doc["paths"] if "internal" in p.lower()]
    assert "ReservationRequest" not in doc["components"]["schemas"]
    assert "Product" in doc["components"]["schemas"]
    assert "ProblemBody" in doc["components"]["schemas"]
    operation = doc["paths"]["/api/v1/products/{product_id}"]["get"]
    for status in ("404", "429", "502", "503", "504"):
        assert status in operation["responses"], status
    operation_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert "/metrics" not in doc["paths"]
