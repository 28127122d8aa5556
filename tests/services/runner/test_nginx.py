"""The nginx edge, run for real in front of an echo upstream: TLS, redirect, what passes, what does not."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from services import catalog
from services.kit.tls import Identity
from services.runner import nginx, tls
from services.runner.layout import Layout
from tests.support.procs import free_port, served_serial

_SHOP = catalog.page_server()
assert _SHOP is not None, "the catalog names a page server (the storefront)"
SHOP_PAGES = _SHOP.edge_pages


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


def _start_edge(
    base: Path, binary: str, *, shop: bool = False, shop_down: bool = False, impostor_upstream: bool = False
) -> tuple[Layout, Path, subprocess.Popen[bytes], ThreadingHTTPServer]:
    # Offset the contract ports so the edge's gateway upstream is our echo server.
    echo_port = free_port()
    layout = Layout(base / str(echo_port), port_offset=echo_port - 8000)
    local_ca = tls.LocalCA(layout.tls, layout.identities)
    ca = local_ca.ca_file
    # The echo server stands in for the gateway as the stack runs it: mutual TLS with its own identity, a
    # client certificate from the stack's CA required (so every request here also proves nginx presents one).
    # ``impostor_upstream``: its certificate is from another CA, and it takes any client, so only nginx's check
    # of the upstream can refuse it.
    server = ThreadingHTTPServer(("127.0.0.1", echo_port), _Echo)
    if impostor_upstream:
        other = tls.LocalCA(base / f"other-{echo_port}", base / f"other-{echo_port}" / "ids")
        upstream = Identity(other.issue("gateway"), other.ca_file).server_context()
        upstream.verify_mode = ssl.CERT_NONE
    else:
        upstream = Identity(local_ca.issue("gateway"), ca).server_context()
    server.socket = upstream.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # ``shop``: the storefront at ``/`` is the echo server too; ``shop_down``: a storefront port nobody serves.
    storefront = nginx.PageServer(free_port() if shop_down else echo_port, SHOP_PAGES) if shop else None
    conf = nginx.write(layout, local_ca.issue("edge"), ca, [echo_port], shop=storefront)
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


def _started_edge(base: Path, **options: bool) -> tuple[Layout, Path, subprocess.Popen[bytes], ThreadingHTTPServer]:
    binary = nginx.find_nginx()
    assert binary, f"nginx missing: {nginx.INSTALL_HINT} (`make deps` does it)"
    for attempt in range(3):
        try:
            return _start_edge(base, binary, **options)
        except (RuntimeError, OSError):
            # The offset edge ports are chosen blindly; another process may hold one. Try other ports.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _edge(tmp_path_factory: pytest.TempPathFactory, **shop: bool) -> Iterator[tuple[Layout, Path]]:
    layout, ca, proc, server = _started_edge(tmp_path_factory.mktemp("edge"), **shop)
    yield layout, ca
    proc.terminate()
    proc.wait(10)
    server.shutdown()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Path]]:
    yield from _edge(tmp_path_factory)


@pytest.fixture(scope="module")
def shop_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Path]]:
    yield from _edge(tmp_path_factory, shop=True)


def test_a_renewed_edge_identity_is_served_after_sighup_and_still_reaches_the_upstream(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """What the supervisor does when it renews "edge": SIGHUP to nginx's master, which re-reads the one identity
    file (its public certificate and its client certificate towards the upstream) without dropping the edge."""
    layout, ca, proc, server = _started_edge(tmp_path_factory.mktemp("renew"))
    try:
        before = served_serial(layout.edge_https, _ctx(ca))
        renewed = x509.load_pem_x509_certificate(
            tls.LocalCA(layout.tls, layout.identities).issue("edge").read_bytes()
        ).serial_number
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (served := served_serial(layout.edge_https, _ctx(ca))) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served == renewed != before
        assert proc.poll() is None
        # The upstream requires a client certificate from the CA: the renewed one is presented.
        r = httpx.get(f"https://127.0.0.1:{layout.edge_https}/api/v1/products", verify=_ctx(ca))
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        proc.wait(10)
        server.shutdown()


def test_the_edge_refuses_an_upstream_whose_certificate_is_not_from_the_stack_s_ca(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """nginx verifies the gateway it forwards to (proxy_ssl_verify): an impostor on the gateway's port with a
    certificate from another CA gets no request, and the client gets the edge's 502/503 problem."""
    layout, ca, proc, server = _started_edge(tmp_path_factory.mktemp("impostor"), impostor_upstream=True)
    try:
        r = httpx.get(f"https://127.0.0.1:{layout.edge_https}/api/v1/products", verify=_ctx(ca))
        assert r.status_code in (502, 503), r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "upstream SSL certificate verify error" in (layout.logs / "nginx-error.log").read_text()
    finally:
        proc.terminate()
        proc.wait(10)
        server.shutdown()


@pytest.mark.parametrize(
    "path",
    [
        "/internal/v1/changes",
        "/INTERNAL/v1/changes",
        "/api/../internal/v1/x",
        "/%69nternal/v1/changes",
        "/metrics",
        "/Metrics/",
        "/openapi.json",
        "/readyz",
        "/docs",
        "/redoc",
        "/cartx",
        "/CART",
        "/unknown",
        "/.env",
    ],
)
def test_with_a_storefront_only_its_pages_pass_the_edge_and_its_operational_routes_stay_inside(
    shop_edge: tuple[Layout, Path], path: str
) -> None:
    layout, ca = shop_edge
    r = httpx.get(f"https://127.0.0.1:{layout.edge_https}{path}", verify=_ctx(ca))
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_the_storefront_gets_its_pages_with_the_client_address_set_by_the_edge(shop_edge: tuple[Layout, Path]) -> None:
    layout, ca = shop_edge
    for path in ("/", "/products/abc", "/cart", "/cart/items", "/static/shop.css"):
        r = httpx.get(
            f"https://127.0.0.1:{layout.edge_https}{path}", verify=_ctx(ca), headers={"X-Forwarded-For": "1.2.3.4"}
        )
        assert r.status_code == 200, (path, r.text)
        assert r.json()["path"] == path
        assert r.json()["headers"]["x-forwarded-for"] == "127.0.0.1"
        assert r.headers["strict-transport-security"] == "max-age=31536000"


def test_a_storefront_that_does_not_answer_gets_a_page_for_people_not_json(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for layout, ca in _edge(tmp_path_factory, shop=True, shop_down=True):
        r = httpx.get(f"https://127.0.0.1:{layout.edge_https}/cart", verify=_ctx(ca))
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("text/html")
        assert "The shop is not answering right now" in r.text
        assert r.headers["strict-transport-security"] == "max-age=31536000"
        # The API behind the same edge is not affected.
        assert httpx.get(f"https://127.0.0.1:{layout.edge_https}/healthz", verify=_ctx(ca)).status_code == 200


def test_http_redirects_to_https_on_the_edge_own_name_whatever_host_the_client_sends(edge: tuple[Layout, Path]) -> None:
    """Plain HTTP must never carry API traffic (tokens, card numbers); and the redirect must not send a client
    wherever its Host header says (an open redirect, or a poisoned cache's redirect to an attacker's site)."""
    layout, _ = edge
    for host in (None, "evil.example", "evil.example:8443", "localhost@evil.example"):
        headers = {"host": host} if host else {}
        r = httpx.get(f"http://127.0.0.1:{layout.edge_http}/api/v1/products?x=1", headers=headers)
        assert r.status_code == 308
        assert r.headers["location"] == f"https://{nginx.EDGE_HOST}:{layout.edge_https}/api/v1/products?x=1"


def test_tls_certificate_verifies_against_the_local_ca(edge: tuple[Layout, Path]) -> None:
    """Clients verify the edge (no -k): the generated CA signs a certificate for localhost and 127.0.0.1."""
    layout, ca = edge
    for host in ("127.0.0.1", "localhost"):
        assert httpx.get(f"https://{host}:{layout.edge_https}/healthz", verify=_ctx(ca)).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{layout.edge_https}/healthz")  # system CAs do not know it


@pytest.mark.parametrize(
    "path",
    [
        "/internal/v1/changes",
        "/INTERNAL/v1/changes",
        "/api/../internal/v1/x",
        "/%69nternal/v1/changes",
        "/metrics",
        "/openapi.json",
        "/",
    ],
)
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
    r = httpx.get(
        f"https://127.0.0.1:{layout.edge_https}/api/v1/products/abc",
        verify=_ctx(ca),
        headers={"X-Forwarded-For": "1.2.3.4", "X-Request-ID": "edge-test-1"},
    )
    upstream = r.json()
    assert upstream["path"] == "/api/v1/products/abc"
    assert upstream["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert upstream["headers"]["x-forwarded-proto"] == "https"
    assert upstream["headers"]["x-request-id"] == "edge-test-1"
    assert r.headers["x-request-id"] == "edge-test-1"


def _raw(layout: Layout, ca: Path, request: bytes, *, tls: bool = True) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (requests no HTTP client would write) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", layout.edge_https), timeout=10) as raw:
        sock = _ctx(ca).wrap_socket(raw, server_hostname="localhost") if tls else raw
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "tls"),
    [
        (b"GET /api/v1/products HTTP/1.1\r\nConnection: close\r\n\r\n", 400, True),  # no Host
        (b"GET /api/v1/products HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 400, True),
        (b"GET /api/v1/products HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, False),  # plain HTTP on the TLS port
        (b"TRACE /api/v1/products HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 405, True),
        (
            b"POST /api/v1/products HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000000\r\n"
            b"Connection: close\r\n\r\n",
            413,
            True,
        ),
        (b"GET /api/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 414, True),
        (
            b"POST /api/v1/products HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n"
            b"Connection: close\r\n\r\n",
            501,
            True,
        ),
    ],
    ids=[
        "no-host",
        "header-too-large",
        "plain-http-on-tls",
        "trace",
        "body-too-large",
        "uri-too-long",
        "unknown-transfer-encoding",
    ],
)
def test_errors_nginx_answers_itself_are_problem_json(
    edge: tuple[Layout, Path], request_bytes: bytes, status: int, tls: bool
) -> None:
    """Clients parse every error of the API as RFC 9457 problem+json, including the ones the edge answers
    before the gateway sees the request: an HTML page breaks them and names the server software."""
    layout, ca = edge
    got, headers, body = _raw(layout, ca, request_bytes, tls=tls)
    assert got == status, body[:300]
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["type"].startswith("https://")
    assert problem["title"]
    assert problem["detail"]
    assert problem["request_id"] == headers["x-request-id"]
    if status == 405:
        assert "GET" in headers["allow"]


def test_a_problem_body_stays_json_whatever_the_path(edge: tuple[Layout, Path]) -> None:
    """nginx pastes the path into the problem's `instance` without JSON escaping: a quote or a backslash in the
    path must not let a client break out of the string and add members of its own."""
    layout, ca = edge
    for path in (b'/x","status":200,"y":"', b"/x\\", b"/x%22,%22status%22:200"):
        request = b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        status, _, body = _raw(layout, ca, request)
        assert status in (400, 404), body
        problem = json.loads(body)
        assert problem["status"] == status
        assert problem["instance"] in ("", path.decode())
    r = httpx.get(f"https://127.0.0.1:{layout.edge_https}/nowhere?q=1", verify=_ctx(ca))
    assert r.json()["instance"] == "/nowhere"


def _handshake(layout: Layout, ca: Path, version: ssl.TLSVersion, ciphers: str | None = None) -> str:
    ctx = _ctx(ca)
    ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    with (
        socket.create_connection(("127.0.0.1", layout.edge_https), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        cipher = sock.cipher()
        assert cipher is not None
        return cipher[0]


@pytest.mark.parametrize(
    "cbc_suite",
    ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"],
)
def test_tls12_refuses_cbc_suites(edge: tuple[Layout, Path], cbc_suite: str) -> None:
    """CBC suites in TLS 1.2 are the ones with a history of padding-oracle attacks (Lucky 13, POODLE-style):
    Mozilla's intermediate profile offers only AEAD suites, and so does the edge."""
    layout, ca = edge
    with pytest.raises(ssl.SSLError):
        _handshake(layout, ca, ssl.TLSVersion.TLSv1_2, cbc_suite)


def test_tls12_with_aead_and_tls13_are_accepted(edge: tuple[Layout, Path]) -> None:
    """Older clients still get TLS 1.2, with an AEAD suite; current ones get TLS 1.3."""
    layout, ca = edge
    assert _handshake(layout, ca, ssl.TLSVersion.TLSv1_2) in nginx.TLS12_CIPHERS.split(":")
    assert (
        _handshake(layout, ca, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305")
        == "ECDHE-ECDSA-CHACHA20-POLY1305"
    )
    assert _handshake(layout, ca, ssl.TLSVersion.TLSv1_3).startswith("TLS_")
