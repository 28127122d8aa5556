"""The nginx edge of the one-machine stack: TLS termination in front of the gateway.

A pure builder (config text from the layout) plus a check with ``nginx -t``. It passes on only the
public surface of the contract (``/api/``, ``/.well-known/``, ``/healthz``); everything else, including
any spelling of ``/internal``, gets a 404 problem body from nginx itself, and so does every other error
nginx answers itself (RFC 9457 problem+json, never nginx's HTML pages). Clients cannot spoof their
address: the edge *replaces* X-Forwarded-For with the peer address, and the gateway trusts that header
only from 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from services.kit.errors import problem_body
from services.kit.settings import KitSettings
from services.runner.layout import Layout

INSTALL_HINT = "install nginx (Debian/Ubuntu: apt-get install nginx-light; macOS: brew install nginx)"


def find_nginx() -> str | None:
    """``NGINX`` names the binary when it is somewhere unusual (an empty or missing path means "none")."""
    if "NGINX" in os.environ:
        return os.environ["NGINX"] if Path(os.environ["NGINX"]).is_file() else None
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/opt/homebrew/bin/nginx") if Path(p).exists()),
        None,
    )


# The host name clients use for the edge (the local certificate is for it and 127.0.0.1). The HTTP port
# redirects there, never to whatever Host a client sent.
EDGE_HOST = "localhost"

# Mozilla's "intermediate" TLS 1.2 suites (Server Side TLS guideline 5.7): ECDHE key exchange with AEAD only,
# no CBC. Its DHE-RSA suites are left out: without `ssl_dhparam` nginx never offers them. TLS 1.3 suites are
# OpenSSL's defaults, all AEAD.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

# nginx's idle keep-alive connections to the gateway must close before the gateway closes them: uvicorn
# drops an idle connection after `--timeout-keep-alive` (5 s by default, uvicorn 0.54 config.py), and a
# request nginx writes into a connection the gateway is closing fails (a POST cannot be retried: 502).
UPSTREAM_IDLE_S = 4

# The request body limit: the gateway's MAX_BODY_BYTES default, 1 MiB.
BODY_LIMIT = "1m"


class OwnError(NamedTuple):
    status: int  # what the client gets
    detail: str
    kind: str | None = None  # None: the kit's kind and title for the status
    title: str | None = None


# The errors nginx answers itself, before or instead of the gateway, by the code nginx uses internally:
# 494 (request header too large) and 497 (plain HTTP on the TLS port) are nginx's own, sent as 400. 404
# covers the internal error locations themselves, asked for from outside; 502-504 are the gateway not
# answering (its own problems pass through: proxy_intercept_errors is off).
GATEWAY_DOWN = "The API gateway is not answering; retry shortly."
OWN_ERRORS: dict[int, OwnError] = {
    400: OwnError(400, "The request is malformed."),
    404: OwnError(404, "No such route."),
    405: OwnError(405, "This method is not allowed here."),
    408: OwnError(408, "The request did not arrive in time.", "request-timeout", "Request timeout"),
    413: OwnError(413, "The request body is larger than 1 MiB."),
    414: OwnError(414, "The request URI is too long.", "uri-too-long", "URI too long"),
    494: OwnError(400, "The request headers are too large."),
    497: OwnError(400, "Plain HTTP was sent to the HTTPS port; use https://."),
    500: OwnError(500, "The edge could not handle the request."),
    501: OwnError(
        501, "The request uses a transfer encoding the edge does not implement.", "not-implemented", "Not implemented"
    ),
    502: OwnError(503, GATEWAY_DOWN, "upstream-unavailable"),
    503: OwnError(503, GATEWAY_DOWN, "upstream-unavailable"),
    504: OwnError(503, GATEWAY_DOWN, "upstream-unavailable"),
    505: OwnError(
        505, "This HTTP version is not supported.", "http-version-not-supported", "HTTP version not supported"
    ),
}
ERROR_PATH = "/.edge-errors/"
ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def _problem(status: int, detail: str, *, kind: str | None = None, title: str | None = None) -> str:
    """An RFC 9457 body as an nginx string literal: the kit builds it, nginx fills in the request's path and
    ID (both restricted to safe characters by maps, so a client cannot break out of the JSON)."""
    base = KitSettings.model_fields["problem_base_uri"].default
    body = problem_body(base, status, detail, "@instance@", kind=kind, title=title, request_id="@request_id@")
    text = json.dumps(body, separators=(",", ":")).replace("@instance@", "$problem_instance")
    return text.replace("@request_id@", "$req_id").replace("\\", "\\\\").replace('"', '\\"')


def _error_pages(security_headers: str) -> str:
    """``error_page`` for every error nginx answers itself, each to an internal location returning a problem.
    Locations with a path, not named ones: an error in the request line leaves the request without a URI,
    and nginx refuses to go to a named location from there ("empty URI in redirect to named location",
    ngx_http_core_module.c ngx_http_named_location), answering its own HTML 500 instead."""
    lines = [f"        error_page {code} = {ERROR_PATH}{code};" for code in OWN_ERRORS]
    for code, error in OWN_ERRORS.items():
        # add_header in a location replaces the server's: a 405 repeats them along with Allow.
        extra = (
            f'\n            add_header Allow "{ALLOWED_METHODS}" always;\n{security_headers}'
            if error.status == 405
            else ""
        )
        body = _problem(error.status, error.detail, kind=error.kind, title=error.title)
        lines.append(f"""        location = {ERROR_PATH}{code} {{
            internal;
            default_type application/problem+json;{extra}
            return {error.status} "{body}";
        }}""")
    return "\n".join(lines)


# The page a browser gets when the storefront itself does not answer (its own errors are its own pages).
SHOP_DOWN = (
    "<!doctype html><html lang='en'><meta charset='utf-8'><title>The shop is not answering</title>"
    "<h1>The shop is not answering</h1><p role='alert'>The shop is not answering right now. Please try "
    "again in a moment.</p></html>"
)


class PageServer(NamedTuple):
    """The storefront as the edge sees it: where it listens, and the paths it serves (``catalog`` ``edge_pages``)."""

    port: int
    pages: Sequence[str]


def _pages_location(pages: Sequence[str], scheme: str) -> str:
    """The page server's paths (``catalog.edge_pages``): ``/`` itself, each other one with everything below
    it. Nothing else reaches the storefront, so its operational routes (``/metrics``, ``/readyz``, the API
    document) stay inside however spelled (nginx matches the decoded, normalised path). A location's own
    ``error_page`` replaces every inherited one: the edge's other error pages are declared again beside the
    shop's, which answers people, not programs, when the storefront does not."""
    if not pages:
        return ""
    words = "|".join(re.escape(p.strip("/")) for p in pages if p != "/")
    own = "\n".join(
        f"            error_page {code} = {ERROR_PATH}{code};" for code in OWN_ERRORS if code not in (502, 503, 504)
    )
    return f"""        location ~ "^(/|/({words})(/.*)?)$" {{
            proxy_pass {scheme}://storefront;
{own}
            error_page 502 503 504 = {ERROR_PATH}shop;
        }}
        location = {ERROR_PATH}shop {{
            internal;
            default_type "text/html; charset=utf-8";
            return 503 "{SHOP_DOWN}";
        }}
"""


def render(
    layout: Layout,
    identity: Path,
    ca: Path | None,
    gateway_ports: list[int],
    *,
    shop: PageServer | None = None,
    workers: int = 2,
) -> str:
    base = layout.shared / "nginx"  # its workers may run as a user of their own
    # max_fails=0: no passive failure accounting. nginx 1.22 keeps a replica's failure count until a request
    # succeeds on it after fail_timeout, and while it is "checked" lets only that one request through
    # (ngx_http_upstream_round_robin.c, ngx_http_upstream_get_peer/free_round_robin_peer): one refused connect
    # (the edge's start-up probe, a replica restarting, a keep-alive race) left every replica "down" for the
    # next burst, which then got "no live upstreams". A refused or failed connect still moves the request to
    # the next replica (proxy_next_upstream error timeout, the default), at the cost of one local connect.
    servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=0;" for port in gateway_ports)
    security_headers = "\n".join(
        [
            '            add_header Strict-Transport-Security "max-age=31536000" always;',
            "            add_header X-Content-Type-Options nosniff always;",
            "            add_header X-Request-ID $req_id always;",
        ]
    )
    not_found = _problem(404, OWN_ERRORS[404].detail)
    scheme = "https" if ca is not None else "http"
    upstream_tls = (
        ""
        if ca is None
        else f"""
        # To the gateway and the storefront: mutual TLS, as every hop of the stack (they refuse a client without
        # a certificate from the stack's CA). nginx presents the same identity and verifies theirs against the CA
        # and the name "localhost" in their certificates (an upstream's own name, "gateway", is in none).
        # Connections stay open (keepalive above) and sessions are resumed, so the handshake is rarely paid.
        # The master reads these files at start and on SIGHUP, which the runner sends when it renews "edge".
        proxy_ssl_certificate {identity};
        proxy_ssl_certificate_key {identity};
        proxy_ssl_trusted_certificate {ca};
        proxy_ssl_verify on;
        proxy_ssl_verify_depth 1;
        proxy_ssl_name localhost;
        proxy_ssl_protocols TLSv1.3;
        proxy_ssl_session_reuse on;
"""
    )
    storefront_upstream = (
        ""
        if shop is None
        else f"""    upstream storefront {{
        server 127.0.0.1:{shop.port} max_fails=0;
        keepalive 16;
        keepalive_timeout {UPSTREAM_IDLE_S}s;
    }}
"""
    )
    return f"""# Generated by services.runner.nginx from the service catalog; do not edit.
daemon off;
worker_processes {workers};
pid {base}/nginx.pid;
error_log {layout.logs}/nginx-error.log warn;

events {{
    worker_connections 2048;
}}

http {{
    server_tokens off;
    client_body_temp_path {base}/client_body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    client_max_body_size {BODY_LIMIT};
    default_type application/octet-stream;

    # Echo a client's request ID only when it is short and plain; otherwise use nginx's own.
    map $http_x_request_id $req_id {{
        "~^[A-Za-z0-9._:-]{{1,128}}$" $http_x_request_id;
        default $request_id;
    }}
    # A problem's `instance`: the request's path as the client sent it (an error page's own path is $uri), when
    # it holds only URI characters that need no escaping in JSON.
    map $request_uri $problem_instance {{
        "~^(?<path>[A-Za-z0-9._~!&'()*+,;=:@/%-]{{0,2048}})(\\?.*)?$" $path;
        default "";
    }}

    log_format json escape=json '{{"ts":"$time_iso8601","service":"edge","event":"request",'
        '"request_id":"$req_id","method":"$request_method","route":"$uri","status":$status,'
        '"duration_ms":$request_time,"upstream_ms":"$upstream_response_time","client":"$remote_addr"}}';
    access_log {layout.logs}/nginx-access.log json buffer=32k flush=1s;

    upstream gateway {{
        # Every gateway replica.
{servers}
        # Reused connections to the gateway: a new TCP handshake per request would cost more than nginx.
        keepalive 64;
        keepalive_requests 10000;
        keepalive_timeout {UPSTREAM_IDLE_S}s;
    }}
{storefront_upstream}
    server {{
        listen 127.0.0.1:{layout.edge_http};
        server_name {EDGE_HOST};
        location / {{
            return 308 https://{EDGE_HOST}:{layout.edge_https}$request_uri;
        }}
{_error_pages(security_headers)}
    }}

    server {{
        # `listen ... http2` rather than `http2 on` (1.25.1+): Debian 12 ships nginx 1.22.
        listen 127.0.0.1:{layout.edge_https} ssl http2;
        server_name {EDGE_HOST};
        # The edge's identity from the stack's CA: one file holds its key and certificate.
        ssl_certificate {identity};
        ssl_certificate_key {identity};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {TLS12_CIPHERS};
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_prefer_server_ciphers off;
        ssl_session_cache shared:edge:10m;
        ssl_session_timeout 1h;
        # Ticket keys would live as long as the process and never rotate; the session cache resumes instead.
        ssl_session_tickets off;
{security_headers.replace("            ", "        ")}

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto https;
        proxy_set_header X-Request-ID $req_id;
        proxy_connect_timeout 2s;
        proxy_read_timeout 30s;
        proxy_send_timeout 30s;
        proxy_intercept_errors off;
        proxy_hide_header X-Request-ID;

{upstream_tls}
        location /api/ {{
            proxy_pass {scheme}://gateway;
        }}
        location /.well-known/ {{
            proxy_pass {scheme}://gateway;
        }}
        location = /healthz {{
            proxy_pass {scheme}://gateway;
        }}
{_pages_location(shop.pages if shop else (), scheme)}        location / {{
            default_type application/problem+json;
            return 404 "{not_found}";
        }}
{_error_pages(security_headers)}
    }}
}}
"""


def write(
    layout: Layout,
    identity: Path,
    ca: Path | None,
    gateway_ports: list[int],
    *,
    shop: PageServer | None = None,
) -> Path:
    base = layout.shared / "nginx"  # its workers may run as a user of their own
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    conf = base / "nginx.conf"
    conf.write_text(render(layout, identity, ca, gateway_ports, shop=shop))
    return conf


def check(nginx: str, conf: Path) -> None:
    """``nginx -t``: refuse to start an edge whose config nginx itself rejects."""
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", str(conf.parent), "-c", str(conf)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"nginx -t rejected {conf}:\n{result.stderr.strip()}")


def command(nginx: str, conf: Path) -> list[str]:
    return [nginx, "-p", str(conf.parent), "-c", str(conf)]
