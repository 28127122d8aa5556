"""End-to-end: the edge and the gateway stay up for the services that are up, under a burst and a fault."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from tests.e2e.conftest import RunningStack
from tests.support.burst import Request, burst

SHOPPERS = 200


def _pid(stack: RunningStack, name: str) -> int:
    return int(json.loads(stack.layout.state_file.read_text())["children"][name]["pid"])


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until(what: str, check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds:.0f} s")
        time.sleep(0.2)


def _customer_auth(stack: RunningStack) -> dict[str, str]:
    """A seeded customer's credentials, logged in from an address of its own (the login limit is per client)."""
    email, password, _name = json.loads((stack.layout.secrets / "customers.json").read_text())[0]
    with stack.client(source="127.0.1.1") as c:
        r = c.post("/api/v1/sessions", json={"email": email, "password": password})
        assert r.status_code == 201, r.text
        return {"authorization": f"Bearer {r.json()['access_token']}"}


def test_a_burst_of_shoppers_right_after_the_gateway_replicas_restart_gets_no_5xx(platform_stack: RunningStack) -> None:
    """A launch or a sale: SHOPPERS people open the shop at the same moment, each on a new TLS connection
    from an address of its own, just after the gateway replicas came back (a deploy, a crash; `up` itself
    starts the edge before the gateway). Every one gets the product page, none a 5xx: a replica that
    refused connections a while ago is not held against it once it is back.

    Product pages rather than orders: the subject is the edge's connection handling; an order's saga under
    a burst on a shared CI machine measures the orders service's capacity (``make bench`` reports the
    burst of orders)."""
    stack = platform_stack
    with stack.client() as c:
        products = c.get("/api/v1/products", params={"limit": 100}).json()["items"]
    assert products, "the seeded catalogue is empty"

    replicas = ["gateway", "gateway-2"]
    for name in replicas:
        os.kill(_pid(stack, name), signal.SIGKILL)
    # While both are away, shoppers on new connections (over both nginx workers) find nobody to talk to.
    for _ in range(20):
        with stack.client() as c:
            c.get("/api/v1/products", params={"limit": 1})
    gateway_ports = stack.layout.gateway_ports(len(replicas))
    direct = stack.direct(timeout=2)
    _wait_until(
        "both gateway replicas restarted and ready",
        lambda: all(_answers(direct, f"https://127.0.0.1:{port}/readyz") for port in gateway_ports),
    )

    requests = [Request("GET", f"/api/v1/products/{products[i % len(products)]['id']}") for i in range(SHOPPERS)]
    result = asyncio.run(burst(stack.layout.edge_https, str(stack.ca), requests))
    print(
        f"burst: {SHOPPERS} shoppers, statuses {dict(result.statuses)}, p50 {result.percentile_ms(0.5):.0f} ms, "
        f"p99 {result.percentile_ms(0.99):.0f} ms"
    )
    no_live = [
        line for line in (stack.layout.logs / "nginx-error.log").read_text().splitlines() if "no live upstreams" in line
    ]
    assert result.server_errors == 0, (
        dict(result.statuses),
        no_live[-3:],
        {o.error for o in result.outcomes if o.error},
    )
    assert dict(result.statuses) == {200: SHOPPERS}


@contextmanager
def _frozen(pid: int) -> Iterator[None]:
    """The process stops answering (SIGSTOP) but stays alive, so nothing restarts it: a hung service."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_one_hung_service_leaves_the_rest_of_the_api_serving_through_the_edge(platform_stack: RunningStack) -> None:
    """One service down must stay a partial outage: every gateway replica stays ready (so the edge, the ALB
    and Route 53 keep sending traffic), the other services' routes keep serving through the edge, and the
    upstreams' readiness route names the one that is down."""
    stack = platform_stack
    gateways = [f"https://127.0.0.1:{port}" for port in stack.layout.gateway_ports(2)]
    with stack.client() as c, stack.direct(timeout=10) as direct:
        auth = _customer_auth(stack)
        with _frozen(_pid(stack, "search")):
            for gw in gateways:
                assert direct.get(f"{gw}/readyz").status_code == 200
            assert c.get("/healthz").status_code == 200
            assert c.get("/api/v1/products", params={"limit": 3}).status_code == 200
            assert c.get("/api/v1/orders", headers=auth).status_code == 200
            report = direct.get(f"{gateways[0]}/readyz/upstreams")
            assert report.status_code == 503, report.text
            assert report.json()["failing"] == ["search"]
            assert report.json()["upstreams"]["products"] == "ready"
        _wait_until("search answering again", lambda: c.get("/api/v1/search", params={"q": "lamp"}).status_code == 200)
        assert direct.get(f"{gateways[0]}/readyz/upstreams").status_code == 200
