"""Upstreams: one pooled aiohttp session per routed service, its circuit breaker, and the exchange with it
(safe retries with backoff inside the catalog's deadline).

Why aiohttp and not httpx: see the README ("HTTP client"); in short, httpcore's pool does
O(connections x waiting requests) work per request and the gateway lost most of its throughput to it at
32 concurrent clients.

The session has a ``DummyCookieJar``: a ``Set-Cookie`` from an upstream answering one user must never be
replayed on another user's request. It follows no redirects, adds no headers of its own (no User-Agent,
Accept or Accept-Encoding) and does not decompress: the client gets the upstream's bytes as they were.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
from collections.abc import AsyncIterator

import aiohttp
import yarl
from prometheus_client import Counter

from services import catalog
from services.gateway.breaker import CircuitBreaker, Permit
from services.gateway.settings import Settings
from services.kit import tls
from services.kit.errors import Problem
from services.kit.http import service_url

log = logging.getLogger("gateway")

UPSTREAM_REQUESTS = Counter(
    "gateway_upstream_requests_total",
    "Attempts forwarded to an upstream, by outcome (HTTP status, or error / timeout / circuit-open)",
    ["upstream", "status"],
)

RETRY_STATUSES = frozenset({502, 503})

Body = bytes | AsyncIterator[bytes] | None


def upstream_tls(settings: Settings) -> ssl.SSLContext | bool:
    """How the gateway's connections to the services are secured: with the process's identity on one machine
    (the upstream's certificate verified, ours presented), aiohttp's default elsewhere (the mesh's business)."""
    identity = tls.identity(settings)
    return identity.client_context() if identity else True


class Upstream:
    """One routed service: where it is, its deadline (the catalog's ``gateway_timeout_s``), its breaker and
    its session. Made inside the running event loop (the lifespan's start-up), which the session needs."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.base_url = service_url(settings, name).rstrip("/")
        self.timeout_s = catalog.get(name).gateway_timeout_s
        self.connect_timeout_s = settings.upstream_connect_timeout_s
        self.retry_attempts = settings.retry_attempts
        self.retry_backoff_s = settings.retry_backoff_s
        self.breaker = CircuitBreaker(
            name,
            consecutive_failures=settings.breaker_consecutive_failures,
            failure_ratio=settings.breaker_failure_ratio,
            window_s=settings.breaker_window_s,
            min_requests=settings.breaker_min_requests,
            cooldown_s=settings.breaker_cooldown_s,
        )
        keepalive_s = settings.upstream_keepalive_s
        connector = aiohttp.TCPConnector(
            limit=settings.upstream_max_connections,
            limit_per_host=0,
            ttl_dns_cache=10,
            keepalive_timeout=keepalive_s if keepalive_s > 0 else None,
            force_close=keepalive_s <= 0,
            ssl=upstream_tls(settings),
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        self._status_counters: dict[str, Counter] = {}

    async def aclose(self) -> None:
        await self.session.close()

    def count(self, status: str) -> None:
        counter = self._status_counters.get(status)
        if counter is None:
            counter = self._status_counters[status] = UPSTREAM_REQUESTS.labels(self.name, status)
        counter.inc()

    def timed_out(self) -> Problem:
        return Problem(
            504, f"The {self.name} service did not answer in time.", kind="upstream-timeout", upstream=self.name
        )

    def bad_answer(self) -> Problem:
        return Problem(502, f"The {self.name} service gave no valid answer.", kind="bad-gateway", upstream=self.name)

    def unavailable(self) -> Problem:
        return Problem(
            503,
            f"The {self.name} service is unavailable; retry shortly.",
            kind="upstream-unavailable",
            upstream=self.name,
            headers={"Retry-After": "1"},
        )

    async def exchange(
        self, method: str, target: yarl.URL, headers: list[tuple[str, str]], data: Body, *, retryable: bool
    ) -> aiohttp.ClientResponse:
        """The upstream's response (status and headers in, body unread), or a problem: 503 while the circuit
        is open or when the service cannot be reached, 504 past the deadline, 502 for a broken answer.
        ``retryable`` requests (safe methods with a body in hand) are tried again after a connection or
        transport error or a 502/503 answer. Whatever ``data`` raises while it is sent passes through."""
        attempts = 1 + (self.retry_attempts if retryable else 0)
        deadline = time.monotonic() + self.timeout_s
        for attempt in range(attempts):
            permit = self.breaker.allow()
            if permit is Permit.DENY:
                self.count("circuit-open")
                raise Problem(
                    503,
                    f"The {self.name} service is unavailable (circuit open); retry shortly.",
                    kind="upstream-unavailable",
                    upstream=self.name,
                    headers={"Retry-After": str(self.breaker.retry_after_s())},
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.count("timeout")
                raise self.timed_out()
            timeout = aiohttp.ClientTimeout(total=remaining, sock_connect=min(self.connect_timeout_s, remaining))
            last = attempt == attempts - 1
            error: aiohttp.ClientError
            try:
                response = await self.session.request(
                    method, target, headers=headers, data=data, allow_redirects=False, timeout=timeout
                )
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # Never reached the service: safe to try again for any method, but only safe ones are.
                failure, error = self.unavailable(), exc
            except TimeoutError:
                self.breaker.record(False, permit)
                self.count("timeout")
                raise self.timed_out() from None
            except aiohttp.ClientError as exc:
                failure, error = self.bad_answer(), exc
            else:
                status = response.status
                self.count(str(status))
                content_type = response.headers.get("content-type", "").encode("latin-1")
                self.breaker.record(not _problem_failed(status, content_type), permit)
                if status not in RETRY_STATUSES or last:
                    return response
                response.release()
                await _backoff(self.retry_backoff_s, attempt, deadline)
                continue
            self.breaker.record(False, permit)
            self.count("error")
            log.warning(
                "upstream error",
                extra={
                    "event": "upstream_error",
                    "upstream": self.name,
                    "error_type": type(error).__name__,
                    "attempt": attempt + 1,
                },
            )
            if last:
                raise failure
            await _backoff(self.retry_backoff_s, attempt, deadline)
        raise AssertionError("unreachable: the last attempt returns or raises")


def open_upstreams(settings: Settings) -> dict[str, Upstream]:
    """Every routed upstream, sessions open (call inside the running event loop)."""
    return {name: Upstream(name, settings) for name in settings.upstreams}


def _problem_failed(status: int, content_type: bytes | None) -> bool:
    """Does this answer count against the upstream's circuit? 502/504, and a 503 that is not the service's
    own problem answer (a service saying "my dependency is down" is itself healthy and answering)."""
    if status in (502, 504):
        return True
    return status == 503 and not (content_type or b"").startswith(b"application/problem+json")


async def _backoff(base_s: float, attempt: int, deadline: float) -> None:
    # Exponential (base x 2^attempt), each delay drawn uniformly from 0.5x to 1.5x of that so that
    # retries started together spread out; never past the deadline.
    delay = min(base_s * (2**attempt) * (0.5 + secrets.randbelow(1000) / 1000), deadline - time.monotonic())
    if delay > 0:
        await asyncio.sleep(delay)
