"""The nginx edge, run for real in front of an echo upstream: TLS, redirect, what passes, what does not."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from services.runner import nginx, tls
from services.runner.layout import Layout
from tests.support.procs import free_port


def _ctx(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _start_edge(base: Path, binary: str) -> tuple[Layout, Path, subprocess.Popen[bytes], ThreadingHTTPServer]:
    # Offset the contract ports so the edge's gateway upstream is our echo server.
    echo_port = free_port()
    layout = Layout(base / str(echo_port), port_offset=echo_port - 8000)
    server = ThreadingHTTPServer(("127.0.0.1", echo_port), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ca, cert, key = tls.ensure_certificates(layout.tls)
    conf = nginx.write(layout, cert, key, [echo_port])
    nginx.check(binary, conf)
    proc = subprocess.Popen(nginx.command(binary, conf), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(f"https://127.0.0.1:{layout.edge_https}/healthz", verify=_ctx(ca), timeout=1)
            return layout, ca, proc, server
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    server.shutdown()
    raise RuntimeError(f"nginx did not serve: {proc.stderr.read().decode() if proc.stderr else ''}")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Path]]:
    binary = nginx.find_nginx()
    assert binary, f"nginx missing: {nginx.INSTALL_HINT} (`make deps` does it)"
    base = tmp_path_factory.mktemp("edge")
    for attempt in range(3):
        try:
            layout, ca, proc, server = _start_edge(base, binary)
            break
        except (RuntimeError, OSError):
            # The offset edge ports are chosen blindly; another process may hold one. Try other ports.
            if attempt == 2:
                raise
    yield layout, ca
    proc.terminate()
    proc.wait(10)
    server.shutdown()


def test_http_redirects_to_https(edge: tuple[Layout, Path]) -> None:
    """Plain HTTP must never carry API traffic (tokens, card numbers)."""
    layout, _ = edge
    r = httpx.get(f"http://127.0.0.1:{layout.edge_http}/api/v1/products?x=1")
    assert r.status_code == 308
    assert r.headers["location"] == f"https://127.0.0.1:{layout.edge_https}/api/v1/products?x=1"


def test_tls_certificate_verifies_against_the_local_ca(edge: tuple[Layout, Path]) -> None:
    """Clients verify the edge (no -k): the generated CA signs a certificate for localhost and 127.0.0.1."""
    layout, ca = edge
    for host in ("127.0.0.1", "localhost"):
        assert httpx.get(f"https://{host}:{layout.edge_https}/healthz", verify=_ctx(ca)).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{layout.edge_https}/healthz")  # system CAs do not know it


@pytest.mark.parametrize("path", ["/internal/v1/changes", "/INTERNAL/v1/changes", "/api/../internal/v1/x",
                                  "/%69nternal/v1/changes", "/metrics", "/openapi.json", "/"])
def test_only_the_public_surface_passes_the_edge(edge: tuple[Layout, Path], path: str) -> None:
    """Internal routes and operational endpoints must not be reachable from outside, however spelled."""
    layout, ca = edge
    r = httpx.get(f"https://127.0.0.1:{layout.edge_https}{path}", verify=_ctx(ca))
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 404
    assert body["request_id"] == r.headers["x-request-id"]


def test_client_address_cannot_be_spoofed_and_request_id_passes_through(edge: tuple[Layout, Path]) -> None:
    """The gateway rate-limits by X-Forwarded-For from its trusted proxy; the edge must overwrite what a client
    claims, or anyone could dodge the limits. A sane client request ID is kept for end-to-end tracing."""
    layout, ca = edge
    r = httpx.get(f"https://127.0.0.1:{layout.edge_https}/api/v1/products/abc", verify=_ctx(ca),
                  headers={"X-Forwarded-For": "1.2.3.4", "X-Request-ID": "edge-test-1"})
    upstream = r.json()
    assert upstream["path"] == "/api/v1/products/abc"
    assert upstream["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert upstream["headers"]["x-forwarded-proto"] == "https"
    assert upstream["headers"]["x-request-id"] == "edge-test-1"
    assert r.headers["x-request-id"] == "edge-test-1"
