"""Timeouts, retries and circuit breakers, against stand-in upstreams that can be made slow, failing or
dead on demand (which the real services cannot)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services import catalog
from services.deploy.keyring import KeyRing
from tests.services.gateway.conftest import GatewayFactory, hits, jwks_json, rid, standin_urls
from tests.support.procs import ServiceProcess


def _circuit_state(gw: ServiceProcess, upstream: str) -> float:
    text = httpx.get(gw.url + "/metrics").text
    match = re.search(rf'^gateway_circuit_state{{upstream="{upstream}"}} (\S+)$', text, re.MULTILINE)
    assert match, text[:500]
    return float(match.group(1))


@pytest.fixture
def own_standin(keyring: KeyRing, gw_logdir: Path) -> Iterator[ServiceProcess]:
    """A stand-in of its own, to be killed and restarted at the same address."""
    proc = ServiceProcess(
        "own-standin", {"STANDIN_JWKS": jwks_json(keyring)}, gw_logdir, app="tests.services.gateway.upstream_app:app"
    ).start()
    yield proc
    proc.stop()


@pytest.mark.slow
def test_breaker_opens_on_a_dead_upstream_and_closes_after_recovery(
    start_gateway: GatewayFactory, standin: ServiceProcess, own_standin: ServiceProcess
) -> None:
    """A dead upstream is answered with a fast 503 ``upstream-unavailable`` (never a hang); after a few
    failures the circuit opens and requests fail without touching the network (Retry-After set); once
    the service is back, a probe after the cool-down closes the circuit again."""
    urls = {**standin_urls(standin), "products": f"{own_standin.url}/_svc/products"}
    gw = start_gateway(service_urls=urls, BREAKER_CONSECUTIVE_FAILURES="3", BREAKER_COOLDOWN_S="4", RETRY_ATTEMPTS="0")
    assert httpx.get(gw.url + "/api/v1/products/x").status_code == 200
    assert _circuit_state(gw, "products") == 0

    own_standin.kill()
    for _ in range(3):
        started = time.monotonic()
        r = httpx.get(gw.url + "/api/v1/products/x")
        assert time.monotonic() - started < 1.0
        assert r.status_code == 503
        assert r.json()["type"].endswith("/upstream-unavailable")
    opened_at = time.monotonic()
    assert _circuit_state(gw, "products") == 1

    own_standin.start()  # back, but the circuit is still open
    request_id = rid()
    # Failing fast is shown by the upstream never seeing the request (hits == 0), not by a stopwatch: a
    # loaded host makes any fixed time bound flaky without saying anything about the breaker.
    r = httpx.get(gw.url + "/api/v1/products/x", headers={"x-request-id": request_id})
    assert r.status_code == 503
    assert "circuit open" in r.json()["detail"]
    assert r.headers["retry-after"].isdigit()
    assert hits(own_standin, request_id) == 0
    # Other upstreams are not affected by the products circuit.
    assert httpx.get(gw.url + "/api/v1/search").status_code == 200

    assert time.monotonic() - opened_at < 4, "the restart took longer than the cool-down"
    time.sleep(max(0.0, opened_at + 4.1 - time.monotonic()))
    assert httpx.get(gw.url + "/api/v1/products/x").status_code == 200  # the half-open probe
    assert _circuit_state(gw, "products") == 0
    assert [httpx.get(gw.url + "/api/v1/products/x").status_code for _ in range(3)] == [200] * 3


@pytest.mark.slow
def test_slow_upstream_is_cut_off_with_504_at_the_route_timeout(
    gateway: ServiceProcess, standin: ServiceProcess
) -> None:
    """A service that does not answer gets a 504 ``upstream-timeout`` at the catalog's per-route timeout,
    not a hung client, and a timed-out request is not sent again (it may have had an effect)."""
    timeout = catalog.get("products").gateway_timeout_s
    request_id = rid()
    started = time.monotonic()
    r = httpx.get(
        gateway.url + f"/api/v1/products/x?sleep={timeout + 3}",
        headers={"x-request-id": request_id},
        timeout=timeout + 10,
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 504
    assert r.json()["type"].endswith("/upstream-timeout")
    assert timeout - 0.1 <= elapsed < timeout + 1.0
    assert hits(standin, request_id) == 1


@pytest.mark.slow
def test_a_body_that_stalls_after_the_headers_is_a_504_not_a_500(
    gateway: ServiceProcess, standin: ServiceProcess
) -> None:
    """The gateway reads a small body whole before it answers, so an upstream that sends its headers and
    then stalls is still that upstream's timeout: 504 ``upstream-timeout``, never the gateway's own 500."""
    timeout = catalog.get("products").gateway_timeout_s
    r = httpx.get(gateway.url + f"/api/v1/products/x?stall_body={timeout + 3}", timeout=timeout + 10)
    assert r.status_code == 504, r.text
    assert r.json()["type"].endswith("/upstream-timeout")


@pytest.mark.parametrize(
    ("method", "status", "expected_hits"),
    [
        ("GET", 503, 3),
        ("GET", 502, 3),
        ("HEAD", 503, 3),
        ("OPTIONS", 503, 3),
        ("GET", 500, 1),
        ("GET", 504, 1),
        ("GET", 404, 1),
        ("POST", 503, 1),
        ("POST", 502, 1),
        ("PUT", 503, 1),
        ("PATCH", 503, 1),
        ("DELETE", 503, 1),
    ],
)
def test_only_safe_requests_are_retried(
    gateway: ServiceProcess, standin: ServiceProcess, method: str, status: int, expected_hits: int
) -> None:
    """A 502/503 is retried (twice, by default) only for GET/HEAD/OPTIONS, which cannot have side effects; a
    POST or PUT is sent exactly once, so an order or a charge can never be duplicated by the gateway."""
    request_id = rid()
    r = httpx.request(method, gateway.url + f"/api/v1/orders/x?status={status}", headers={"x-request-id": request_id})
    assert r.status_code == status
    assert hits(standin, request_id) == expected_hits
