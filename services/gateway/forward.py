"""Forwarding: one request from the client to its upstream and the answer back.

The hot path stays off FastAPI's request/response machinery: it reads the ASGI scope, checks the path,
the rate limits and the token, and hands the request to the upstream's pooled session. Bodies are
streamed both ways; JSON is never parsed or re-serialised here.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import yarl
from starlette.types import Receive, Scope, Send

from services.gateway.paths import is_clean_public_path, quote_path
from services.gateway.ratelimit import RateLimits, client_key
from services.gateway.settings import Settings
from services.gateway.upstream import Body, Upstream
from services.kit.auth import Principal, TokenVerifier
from services.kit.client_address import ClientAddress
from services.kit.context import request_id_var, traceparent_var, user_id_var
from services.kit.errors import Problem

log = logging.getLogger("gateway")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SMALL_BODY = 64 * 1024
# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the gateway sets itself.
_REQUEST_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"host",
        b"content-length",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-real-ip",
        b"x-request-id",
        b"traceparent",
    }
)
_RESPONSE_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"x-request-id",
        b"date",
        b"server",
    }
)


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Gateway:
    """What forwarding needs, complete from the start: made once the upstream sessions are open, the
    bucket table mapped and the token verifier known (``limits`` is None when rate limiting is off,
    ``verifier`` when no users service is routed)."""

    settings: Settings
    upstreams: Mapping[str, Upstream]
    limits: RateLimits | None
    verifier: TokenVerifier | None
    client_address: ClientAddress

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()
        if self.limits is not None:
            self.limits.close()

    async def forward(self, upstream: Upstream, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request under ``upstream``'s public prefixes; refusals are raised as problems."""
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
        peer_trusted = self.client_address.trusts(peer)
        xff_text = forwarded_for.decode("latin-1") if forwarded_for is not None else None

        if self.limits is not None:
            address = self.client_address.resolve(peer, xff_text)
            self.limits.admit_client(client_key(address) if address is not None else peer, method, path)

        if authorization is not None:
            principal = await self._verify(authorization)
            user_id_var.set(str(principal.user_id))
            if self.limits is not None:
                self.limits.admit_user(str(principal.user_id))

        # X-Forwarded-*: the chain we were given only when a trusted proxy gave it, then our peer.
        xff = f"{xff_text}, {peer}" if peer_trusted and xff_text else peer
        headers.append((b"x-forwarded-for", xff.encode("latin-1")))
        proto = forwarded_proto if peer_trusted and forwarded_proto else scope.get("scheme", "http").encode()
        headers.append((b"x-forwarded-proto", proto))
        headers.append((b"x-request-id", request_id_var.get().encode()))
        headers.append((b"traceparent", _new_traceparent(traceparent_var.get())))

        query: bytes = scope.get("query_string", b"")
        url = f"{upstream.base_url}{quote_path(path)}"
        if query:
            url = f"{url}?{query.decode('latin-1')}"

        max_body = self.settings.max_body_bytes
        data: Body = None
        declared = int(content_length) if content_length and content_length.isdigit() else None
        if declared is not None and declared > max_body:
            raise Problem(413, f"The request body is larger than {max_body} bytes.")
        streamed = not (method in SAFE_METHODS or (declared is not None and declared <= _SMALL_BODY))
        if streamed:
            if declared is not None:
                headers.append((b"content-length", content_length or b"0"))
            data = _stream_body(receive, max_body)
        else:
            try:
                data = await _read_body(receive, max_body) or None
            except _ClientGone:
                return

        target = yarl.URL(url, encoded=True)  # already checked and quoted: no re-encoding, no normalising
        str_headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
        try:
            response = await upstream.exchange(
                method, target, str_headers, data, retryable=method in SAFE_METHODS and not streamed
            )
        except _BodyTooLarge:
            raise Problem(413, f"The request body is larger than {max_body} bytes.") from None
        except _ClientGone:
            return
        await _respond(upstream, send, response)

    async def _verify(self, authorization: bytes) -> Principal:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401,
                "The Authorization header must be 'Bearer <access token>'.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if self.verifier is None:
            raise Problem(
                503, "Access tokens cannot be verified: no users service is configured.", kind="upstream-unavailable"
            )
        return await self.verifier.verify(token.strip())


async def _respond(upstream: Upstream, send: Send, response: aiohttp.ClientResponse) -> None:
    out: list[tuple[bytes, bytes]] = []
    drop = _RESPONSE_DROP
    connection = response.headers.get("connection")
    if connection:
        drop = drop | {t.strip().lower().encode() for t in connection.split(",")}
    small = False
    base = upstream.base_url.encode()
    for raw_name, value in response.raw_headers:
        name = raw_name.lower()
        if name in drop:
            continue
        if name == b"location" and value.startswith(base):
            value = value[len(base) :] or b"/"
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
                upstream.count("timeout")
                raise upstream.timed_out() from None
            except aiohttp.ClientError:
                upstream.count("error")
                raise upstream.bad_answer() from None
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


def _new_traceparent(incoming: str | None) -> bytes:
    """W3C trace context: keep the caller's trace id and flags, with the gateway's own span as parent."""
    # Trace and span ids must be unique, not secret: the PRNG spares a getrandom() call per id.
    span = f"{random.getrandbits(64) or 1:016x}"
    if incoming:
        return f"{incoming[:36]}{span}{incoming[52:]}".encode()
    return f"00-{random.getrandbits(128) or 1:032x}-{span}-01".encode()


@functools.cache
def _warn_server_rewrote_client() -> None:
    # uvicorn's own proxy-header handling (on by default for 127.0.0.1) replaced the peer with an address
    # from X-Forwarded-For before the gateway saw it; TRUSTED_PROXIES can only be honoured with it off.
    log.warning(
        "the server rewrote the client address from X-Forwarded-For; run uvicorn with "
        "--no-proxy-headers so TRUSTED_PROXIES decides",
        extra={"event": "proxy_headers_misconfigured"},
    )


async def _read_body(receive: Receive, max_body: int) -> bytes:
    try:
        chunks = [chunk async for chunk in _stream_body(receive, max_body)]
    except _BodyTooLarge:
        raise Problem(413, f"The request body is larger than {max_body} bytes.") from None
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
