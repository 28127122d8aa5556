"""Forwarding: one raw ASGI endpoint per upstream, mounted on the catalog's public prefixes.

The hot path stays off FastAPI's request/response machinery: it reads the ASGI scope, checks the path,
the rate limits and the token, and hands the request to an aiohttp client session per upstream (its
connector keeps a pool of keep-alive connections). Bodies are streamed both ways; JSON is never parsed or
re-serialised here. Why aiohttp and not httpx: see the README ("HTTP client"); in short, httpcore's pool
does O(connections x waiting requests) work per request and the gateway lost most of its throughput to it
at 32 concurrent clients.

The session has a ``DummyCookieJar``: a ``Set-Cookie`` from an upstream answering one user must never be
replayed on another user's request. It follows no redirects, adds no headers of its own (no User-Agent,
Accept or Accept-Encoding) and does not decompress: the client gets the upstream's bytes as they were.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import random
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl
from prometheus_client import Counter
from starlette.types import Message, Receive, Scope, Send

from services import catalog
from services.gateway.breaker import CircuitBreaker, Permit
from services.gateway.ratelimit import Limit, SharedTokenBuckets
from services.gateway.settings import IPNetwork, Settings
from services.kit.auth import Principal, TokenVerifier
from services.kit.context import request_id_var, traceparent_var, user_id_var
from services.kit.errors import Problem
from services.kit.http import service_url

log = logging.getLogger("gateway")

UPSTREAM_REQUESTS = Counter(
    "gateway_upstream_requests_total",
    "Attempts forwarded to an upstream, by outcome (HTTP status, or error / timeout / circuit-open)",
    ["upstream", "status"],
)
RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused with 429, by limit scope", ["scope"])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({502, 503})
LOGIN_PATH = "/api/v1/sessions"
# Requests that make the users service hash a new password.
PASSWORD_SETTING = frozenset({("POST", "/api/v1/users"), ("PATCH", "/api/v1/users/me")})
_SMALL_BODY = 64 * 1024
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the gateway sets itself.
_REQUEST_DROP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"proxy-authorization", b"proxy-authenticate", b"host", b"content-length", b"x-forwarded-for",
    b"x-forwarded-proto", b"x-forwarded-host", b"forwarded", b"x-real-ip", b"x-request-id", b"traceparent",
})
_RESPONSE_DROP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"proxy-authenticate", b"x-request-id", b"date", b"server",
})


# ---------------------------------------------------------------------------------------------------------
# Paths


# One or more non-empty segments of RFC 3986 path characters (unreserved, sub-delims, ':' and '@'), in their
# decoded form: no percent sign (a second encoding layer), backslash, space, control or non-ASCII character.
_CLEAN_PATH = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@]+)+/?|/")


def is_clean_public_path(path: str) -> bool:
    """True only for a plain absolute path with no tricks: no empty, ``.`` or ``..`` segments, no
    character outside the path alphabet, and no ``internal`` segment in any letter case. ``path`` is
    the already percent-decoded ASGI path."""
    if not _CLEAN_PATH.fullmatch(path):
        return False
    if "/." in path and any(segment in (".", "..") for segment in path.split("/")):
        return False
    lowered = path.lower()
    return "/internal" not in lowered or "internal" not in lowered.split("/")


# ---------------------------------------------------------------------------------------------------------
# Client address


class ClientAddress:
    """The client's address: the peer, or, when the peer is a trusted proxy, the right-most address in
    ``X-Forwarded-For`` that is not itself a trusted proxy. IPv6 clients are keyed by their /64."""

    def __init__(self, trusted: Iterable[IPNetwork]) -> None:
        self.trusted = tuple(trusted)
        self.is_trusted = functools.lru_cache(maxsize=4096)(self._check)

    def _check(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def resolve(self, peer: str, forwarded_for: str | None) -> str:
        if not forwarded_for or not self.trusted or not self.is_trusted(peer):
            return _bucket_key(peer)
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                break  # garbage: the nearest trusted hop is the best we know
            client = hop
            if not self.is_trusted(hop):
                break
        return _bucket_key(client)


@functools.lru_cache(maxsize=65536)
def _bucket_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


# ---------------------------------------------------------------------------------------------------------
# Token verification with a small cache


# ---------------------------------------------------------------------------------------------------------
# Upstreams


@dataclass
class Upstream:
    name: str
    base_url: str
    timeout_s: float
    breaker: CircuitBreaker
    max_connections: int
    keepalive_s: float
    session: aiohttp.ClientSession | None = None
    status_counters: dict[str, Any] = field(default_factory=dict)

    def open(self) -> None:
        """Create the pooled session (inside the running event loop, at start-up)."""
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, limit_per_host=0, ttl_dns_cache=10,
            keepalive_timeout=self.keepalive_s if self.keepalive_s > 0 else None,
            force_close=self.keepalive_s <= 0,
        )
        self.session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()

    def count(self, status: str) -> None:
        counter = self.status_counters.get(status)
        if counter is None:
            counter = self.status_counters[status] = UPSTREAM_REQUESTS.labels(self.name, status)
        counter.inc()


def build_upstreams(settings: Settings) -> dict[str, Upstream]:
    upstreams = {}
    for name in settings.upstreams:
        service = catalog.get(name)
        upstreams[name] = Upstream(
            name=name,
            base_url=service_url(settings, name).rstrip("/"),
            timeout_s=service.gateway_timeout_s,
            breaker=CircuitBreaker(
                name, consecutive_failures=settings.breaker_consecutive_failures,
                failure_ratio=settings.breaker_failure_ratio, window_s=settings.breaker_window_s,
                min_requests=settings.breaker_min_requests, cooldown_s=settings.breaker_cooldown_s,
            ),
            max_connections=settings.upstream_max_connections,
            keepalive_s=settings.upstream_keepalive_s,
        )
    return upstreams


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


def _new_traceparent(incoming: str | None) -> bytes:
    """W3C trace context: keep the caller's trace id and flags, with the gateway's own span as parent."""
    # Trace and span ids must be unique, not secret: the PRNG spares a getrandom() call per id.
    span = f"{random.getrandbits(64) or 1:016x}"
    if incoming:
        return f"{incoming[:36]}{span}{incoming[52:]}".encode()
    return f"00-{random.getrandbits(128) or 1:032x}-{span}-01".encode()


def _problem_failed(status: int, content_type: bytes | None) -> bool:
    """Does this answer count against the upstream's circuit? 502/504, and a 503 that is not the service's
    own problem answer (a service saying "my dependency is down" is itself healthy and answering)."""
    if status in (502, 504):
        return True
    return status == 503 and not (content_type or b"").startswith(b"application/problem+json")


class Gateway:
    """Shared state of the forwarding endpoints: settings, limits, verifier, upstreams."""

    def __init__(self, settings: Settings, buckets: SharedTokenBuckets | None,
                 verifier: TokenVerifier | None, upstreams: dict[str, Upstream]) -> None:
        self.settings = settings
        self.buckets = buckets
        self.verifier = verifier
        self.upstreams = upstreams
        self.client_address = ClientAddress(settings.trusted_proxies)
        self.client_limit = Limit(settings.rate_limit_client_per_s, settings.rate_limit_client_burst)
        self.user_limit = Limit(settings.rate_limit_user_per_s, settings.rate_limit_user_burst)
        self.login_limit = Limit(settings.rate_limit_login_per_s, settings.rate_limit_login_burst)
        self.password_limit = Limit(settings.rate_limit_password_per_s, settings.rate_limit_password_burst)

    def _limit(self, scope_name: str, key: str, limit: Limit) -> None:
        assert self.buckets is not None
        decision = self.buckets.acquire(f"{scope_name}:{key}", limit)
        if not decision.allowed:
            RATE_LIMITED.labels(scope_name).inc()
            raise Problem(429, f"Too many requests ({scope_name} limit); retry after "
                          f"{decision.retry_after_s} s.", kind="rate-limited", scope=scope_name,
                          headers={"Retry-After": str(decision.retry_after_s)})

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()


class ForwardEndpoint:
    """The ASGI app behind one upstream's public prefixes."""

    def __init__(self, gateway: Gateway, upstream: Upstream) -> None:
        self.gateway = gateway
        self.upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gateway
        path: str = scope["path"]
        if not is_clean_public_path(path):
            raise Problem(404, "Not found.")
        method: str = scope["method"]

        authorization = forwarded_for = forwarded_proto = content_length = None
        connection_tokens: set[bytes] = set()
        headers: list[tuple[bytes, bytes]] = []
        for name, value in scope["headers"]:
            if name in _REQUEST_DROP:
                if name == b"x-forwarded-for":
                    forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
                elif name == b"x-forwarded-proto":
                    forwarded_proto = value
                elif name == b"content-length":
                    content_length = value
                elif name == b"connection":
                    connection_tokens.update(t.strip().lower() for t in value.split(b","))
                continue
            if name == b"authorization":
                if authorization is not None:
                    # Which one would we check, and which one would the service read? Refuse to guess.
                    raise Problem(400, "Send at most one Authorization header.")
                authorization = value
            headers.append((name, value))
        if connection_tokens:
            headers = [(n, v) for n, v in headers if n not in connection_tokens]

        peer_address = scope.get("client")
        peer = peer_address[0] if peer_address else "0.0.0.0"
        if peer_address and peer_address[1] == 0 and forwarded_for is not None:
            _warn_server_rewrote_client()
        peer_trusted = bool(gw.client_address.trusted) and gw.client_address.is_trusted(peer)
        xff_text = forwarded_for.decode("latin-1") if forwarded_for is not None else None
        client = gw.client_address.resolve(peer, xff_text)

        if gw.buckets is not None:
            gw._limit("client", client, gw.client_limit)
            if method == "POST" and path == LOGIN_PATH:
                gw._limit("login", client, gw.login_limit)
            elif (method, path) in PASSWORD_SETTING:
                gw._limit("password", client, gw.password_limit)

        if authorization is not None:
            principal = await self._verify(authorization)
            user_id_var.set(str(principal.user_id))
            if gw.buckets is not None:
                gw._limit("user", str(principal.user_id), gw.user_limit)

        # X-Forwarded-*: the chain we were given only when a trusted proxy gave it, then our peer.
        xff = f"{xff_text}, {peer}" if peer_trusted and xff_text else peer
        headers.append((b"x-forwarded-for", xff.encode("latin-1")))
        proto = forwarded_proto if peer_trusted and forwarded_proto else scope.get("scheme", "http").encode()
        headers.append((b"x-forwarded-proto", proto))
        headers.append((b"x-request-id", request_id_var.get().encode()))
        headers.append((b"traceparent", _new_traceparent(traceparent_var.get())))

        raw_path = quote(path, safe=_PATH_SAFE)
        query: bytes = scope.get("query_string", b"")
        url = f"{self.upstream.base_url}{raw_path}?{query.decode('latin-1')}" if query else \
            f"{self.upstream.base_url}{raw_path}"

        max_body = gw.settings.max_body_bytes
        body: bytes | None = None
        stream: AsyncIterator[bytes] | None = None
        declared = int(content_length) if content_length and content_length.isdigit() else None
        if declared is not None and declared > max_body:
            raise Problem(413, f"The request body is larger than {max_body} bytes.")
        if method in SAFE_METHODS or (declared is not None and declared <= _SMALL_BODY):
            try:
                body = await _read_body(receive, max_body)
            except _ClientGone:
                return
        else:
            if declared is not None:
                headers.append((b"content-length", content_length or b"0"))
            stream = _stream_body(receive, max_body)

        await self._forward(scope, send, method, url, headers, body, stream)

    async def _verify(self, authorization: bytes) -> Principal:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "The Authorization header must be 'Bearer <access token>'.",
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        verifier = self.gateway.verifier
        if verifier is None:
            raise Problem(503, "Access tokens cannot be verified: no users service is configured.",
                          kind="upstream-unavailable")
        return await verifier.verify(token.strip())

    async def _forward(self, scope: Scope, send: Send, method: str, url: str, headers: list[tuple[bytes, bytes]],
                       body: bytes | None, stream: AsyncIterator[bytes] | None) -> None:
        upstream = self.upstream
        session = upstream.session
        assert session is not None, "the gateway's start-up hook opens the sessions"
        settings = self.gateway.settings
        retryable = method in SAFE_METHODS and stream is None
        attempts = 1 + (settings.retry_attempts if retryable else 0)
        deadline = time.monotonic() + upstream.timeout_s
        target = yarl.URL(url, encoded=True)  # already checked and quoted: no re-encoding, no normalising
        str_headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
        data: bytes | AsyncIterator[bytes] | None = stream if stream is not None else (body or None)
        for attempt in range(attempts):
            permit = upstream.breaker.allow()
            if permit is Permit.DENY:
                upstream.count("circuit-open")
                raise Problem(503, f"The {upstream.name} service is unavailable (circuit open); retry shortly.",
                              kind="upstream-unavailable", upstream=upstream.name,
                              headers={"Retry-After": str(upstream.breaker.retry_after_s())})
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                upstream.count("timeout")
                raise _timed_out(upstream.name)
            timeout = aiohttp.ClientTimeout(total=remaining,
                                            sock_connect=min(settings.upstream_connect_timeout_s, remaining))
            last = attempt == attempts - 1
            try:
                response = await session.request(method, target, headers=str_headers, data=data,
                                                 allow_redirects=False, timeout=timeout)
            except _BodyTooLarge:
                raise Problem(413, f"The request body is larger than {settings.max_body_bytes} bytes.") from None
            except _ClientGone:
                return
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # Never reached the service: safe to try again for any method, but only safe ones are.
                upstream.breaker.record(False, permit)
                upstream.count("error")
                _log_upstream_error(upstream.name, exc, attempt)
                if not last:
                    await _backoff(settings.retry_backoff_s, attempt, deadline)
                    continue
                raise _unavailable(upstream.name) from None
            except TimeoutError:
                upstream.breaker.record(False, permit)
                upstream.count("timeout")
                raise _timed_out(upstream.name) from None
            except aiohttp.ClientError as exc:
                upstream.breaker.record(False, permit)
                upstream.count("error")
                _log_upstream_error(upstream.name, exc, attempt)
                if not last:
                    await _backoff(settings.retry_backoff_s, attempt, deadline)
                    continue
                raise Problem(502, f"The {upstream.name} service gave no valid answer.",
                              kind="bad-gateway", upstream=upstream.name) from None

            status = response.status
            upstream.count(str(status))
            content_type = response.headers.get("content-type", "").encode("latin-1")
            upstream.breaker.record(not _problem_failed(status, content_type), permit)
            if status in RETRY_STATUSES and not last:
                response.release()
                await _backoff(settings.retry_backoff_s, attempt, deadline)
                continue
            await self._respond(send, response)
            return

    async def _respond(self, send: Send, response: aiohttp.ClientResponse) -> None:
        out: list[tuple[bytes, bytes]] = []
        drop = _RESPONSE_DROP
        connection = response.headers.get("connection")
        if connection:
            drop = drop | {t.strip().lower().encode() for t in connection.split(",")}
        small = False
        base = self.upstream.base_url.encode()
        for raw_name, value in response.raw_headers:
            name = raw_name.lower()
            if name in drop:
                continue
            if name == b"location" and value.startswith(base):
                value = value[len(base):] or b"/"
            elif name == b"content-length":
                small = value.isdigit() and int(value) <= _SMALL_BODY
            out.append((name, value))
        try:
            if small:
                # Nothing is sent before the whole body is in, so a body that does not arrive is still the
                # upstream's timeout or bad answer, not an error of the gateway.
                try:
                    content = await response.read()
                except TimeoutError:
                    self.upstream.count("timeout")
                    raise _timed_out(self.upstream.name) from None
                except aiohttp.ClientError:
                    self.upstream.count("error")
                    raise Problem(502, f"The {self.upstream.name} service gave no valid answer.",
                                  kind="bad-gateway", upstream=self.upstream.name) from None
                await send({"type": "http.response.start", "status": response.status, "headers": out})
                await send({"type": "http.response.body", "body": content})
                return
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            async for chunk in response.content.iter_any():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.release()


def _timed_out(name: str) -> Problem:
    return Problem(504, f"The {name} service did not answer in time.", kind="upstream-timeout", upstream=name)


def _log_upstream_error(name: str, exc: Exception, attempt: int) -> None:
    log.warning("upstream error", extra={"event": "upstream_error", "upstream": name,
                                         "error_type": type(exc).__name__, "attempt": attempt + 1})


@functools.cache
def _warn_server_rewrote_client() -> None:
    # uvicorn's own proxy-header handling (on by default for 127.0.0.1) replaced the peer with an address
    # from X-Forwarded-For before the gateway saw it; TRUSTED_PROXIES can only be honoured with it off.
    log.warning("the server rewrote the client address from X-Forwarded-For; run uvicorn with "
                "--no-proxy-headers so TRUSTED_PROXIES decides", extra={"event": "proxy_headers_misconfigured"})


def _unavailable(name: str) -> Problem:
    return Problem(503, f"The {name} service is unavailable; retry shortly.", kind="upstream-unavailable",
                   upstream=name, headers={"Retry-After": "1"})


async def _backoff(base_s: float, attempt: int, deadline: float) -> None:
    # Exponential with full jitter, never past the deadline.
    delay = min(base_s * (2**attempt) * (0.5 + secrets.randbelow(1000) / 1000), deadline - time.monotonic())
    if delay > 0:
        await asyncio.sleep(delay)


async def _read_body(receive: Receive, max_body: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_body:
                raise Problem(413, f"The request body is larger than {max_body} bytes.")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


async def _stream_body(receive: Receive, max_body: int) -> AsyncIterator[bytes]:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_body:
                raise _BodyTooLarge
            yield chunk
        if not message.get("more_body", False):
            return
