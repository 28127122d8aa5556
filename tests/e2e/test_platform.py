"""End-to-end: the platform as a customer, an admin and an operator meet it, through nginx over TLS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest

from services import catalog
from services.runner.layout import Layout
from tests.e2e.conftest import RunningStack, service_client
from tests.support.procs import ROOT

CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}


def _login(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    r = client.post("/api/v1/sessions", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['access_token']}"}


def test_up_reports_where_everything_is(platform_stack: RunningStack) -> None:
    """`up` is the product's front door: it must say where the edge, each service and the admin file are."""
    out = platform_stack.up_output
    assert "retail platform is up" in out
    for name in ("edge", *(s.name for s in catalog.SERVICES), "prometheus"):
        assert f"  {name}" in out
    assert str(platform_stack.layout.admin_file) in out
    assert platform_stack.layout.admin_file.stat().st_mode & 0o077 == 0, "admin credentials readable by others"


def test_customer_signs_up_searches_orders_cancels_and_is_refunded(platform_stack: RunningStack) -> None:
    """The shop's core journey, across all six services, through the TLS edge: if this breaks, nothing works."""
    with platform_stack.client() as c:
        email, password = f"e2e-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
        r = c.post("/api/v1/users", json={"email": email, "password": password, "name": "E2E Customer"})
        assert r.status_code == 201, r.text
        auth = _login(c, email, password)

        hits = c.get("/api/v1/search", params={"q": "headphones", "limit": 5})
        assert hits.status_code == 200, hits.text
        assert hits.json()["items"], "seeded catalogue is not searchable"
        product_id = hits.json()["items"][0]["product_id"]
        stock_before = c.get(f"/api/v1/products/{product_id}").json()["stock_available"]

        order = c.post(
            "/api/v1/orders",
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
            json={"items": [{"product_id": product_id, "quantity": 2}], "payment": {"card": CARD}},
        )
        assert order.status_code == 201, order.text
        body = order.json()
        assert body["status"] == "confirmed"
        assert c.get(f"/api/v1/products/{product_id}").json()["stock_available"] == stock_before - 2

        seen = c.get(f"/api/v1/orders/{body['id']}", headers=auth)
        assert seen.status_code == 200
        assert seen.json()["id"] == body["id"]
        mine = c.get("/api/v1/orders", headers=auth).json()["items"]
        assert [o["id"] for o in mine] == [body["id"]]

        cancelled = c.post(f"/api/v1/orders/{body['id']}/cancel", headers=auth)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        payment = c.get(f"/api/v1/payments/{body['payment_id']}", headers=auth).json()
        assert payment["refunded_cents"] == payment["amount_cents"] == body["total_cents"]
        assert c.get(f"/api/v1/products/{product_id}").json()["stock_available"] == stock_before


def test_admin_adds_a_product_that_search_finds_within_two_seconds(platform_stack: RunningStack) -> None:
    """The contract promises search freshness of 2 s through the change feed, end to end."""
    with platform_stack.client() as c:
        auth = _login(c, platform_stack.admin_email, platform_stack.admin_password)
        word = f"zyxel{uuid.uuid4().hex[:6]}"
        created = c.post(
            "/api/v1/products",
            headers=auth,
            json={
                "sku": f"E2E-{word}",
                "name": f"Quantum {word} Teapot",
                "description": "Brews in superposition.",
                "category": "kitchen",
                "price_cents": 4999,
                "currency": "EUR",
            },
        )
        assert created.status_code == 201, created.text
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            items = c.get("/api/v1/search", params={"q": word}).json()["items"]
            if any(i["product_id"] == created.json()["id"] for i in items):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the new product was not searchable within 2 s")


def test_every_service_is_scraped_by_prometheus(platform_stack: RunningStack) -> None:
    """Dashboards and alerts are blind to a service Prometheus does not scrape. Each gateway replica is its
    own target, so its counters never appear to reset between scrapes."""
    url = f"http://127.0.0.1:{platform_stack.layout.prometheus}/api/v1/query"
    expected = {s.name for s in catalog.SERVICES}

    def query(q: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = httpx.get(url, params={"query": q}).json()["data"]["result"]
        return result

    deadline = time.monotonic() + 30
    while True:
        targets = {(r["metric"]["service"], r["metric"]["instance"]): r["value"][1] for r in query('up{job="retail"}')}
        served = {r["metric"]["service"] for r in query("count by (service) (http_requests_total)")}
        gateways = sum(1 for svc, _ in targets if svc == "gateway")
        # Prometheus staggers each target's first scrape within the interval: wait for all of them.
        complete = served == expected and {svc for svc, _ in targets} == expected and gateways == 2
        if (complete and set(targets.values()) == {"1"}) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert set(targets.values()) == {"1"}, targets
    assert {svc for svc, _ in targets} == expected
    assert gateways == 2, "each gateway replica is its own target"
    assert served == expected


def test_one_request_id_follows_an_order_through_every_service_log(platform_stack: RunningStack) -> None:
    """Operators debug a failed checkout by grepping one request ID across services: every hop must log it,
    as one JSON object per line."""
    rid = f"e2e-trace-{uuid.uuid4().hex[:12]}"
    with platform_stack.client() as c:
        email = f"trace-{uuid.uuid4().hex[:8]}@example.com"
        c.post("/api/v1/users", json={"email": email, "password": "trace password 1", "name": "Trace"})
        auth = _login(c, email, "trace password 1")
        product_id = c.get("/api/v1/products", params={"limit": 1}).json()["items"][0]["id"]
        r = c.post(
            "/api/v1/orders",
            headers={**auth, "Idempotency-Key": rid, "X-Request-ID": rid},
            json={"items": [{"product_id": product_id, "quantity": 1}], "payment": {"card": CARD}},
        )
        assert r.status_code == 201, r.text
        assert r.headers["x-request-id"] == rid
    deadline = time.monotonic() + 5
    seen: set[str] = set()
    while time.monotonic() < deadline and seen != {"gateway", "orders", "products", "payments"}:
        # The gateway runs as replicas (gateway.log, gateway-2.log): nginx may pick either.
        logs = [
            p
            for name in ("gateway", "orders", "products", "payments")
            for p in platform_stack.layout.logs.glob(f"{name}*.log")
        ]
        for log in logs:
            for line in log.read_text(errors="replace").splitlines():
                if rid in line:
                    entry = json.loads(line)  # every line is one JSON object
                    assert entry["request_id"] == rid
                    seen.add(entry["service"])
        time.sleep(0.2)
    assert seen == {"gateway", "orders", "products", "payments"}
    # nginx buffers its access log and flushes it every second.
    access = platform_stack.layout.logs / "nginx-access.log"
    while time.monotonic() < deadline + 2 and rid not in access.read_text():
        time.sleep(0.2)
    edge_lines = [json.loads(line) for line in access.read_text().splitlines() if rid in line]
    assert [e["request_id"] for e in edge_lines] == [rid]


def test_starting_twice_is_refused_and_status_reports_ready(platform_stack: RunningStack) -> None:
    """A second `up` must not start a second set of processes fighting for the same ports and data."""
    again = platform_stack.runner("up")
    assert again.returncode == 1
    assert "already running" in again.stderr
    status = platform_stack.runner("status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count(" ready ") >= 8


def test_a_crashed_service_is_restarted_and_serves_again(platform_stack: RunningStack) -> None:
    """A process that dies (OOM killer, a bug) must come back by itself; `status` shows that it happened."""
    state = json.loads(platform_stack.layout.state_file.read_text())
    pid = state["children"]["search"]["pid"]
    os.kill(pid, signal.SIGKILL)
    direct = platform_stack.direct(timeout=1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = json.loads(platform_stack.layout.state_file.read_text())["children"]["search"]
        if info["pid"] != pid and info["restarts"] >= 1:
            try:
                if direct.get(f"{platform_stack.layout.url('search')}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    else:
        raise AssertionError("search was not restarted within 20 s")
    status = platform_stack.runner("status")
    assert status.returncode == 0, status.stdout
    assert any(line.split()[0] == "search" and "restarts 1" in line for line in status.stdout.splitlines())


def test_missing_nginx_and_prometheus_are_skipped_with_a_hint(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Without nginx or Prometheus the platform still runs; `up` says what it skipped and how to install it."""
    layout = Layout(tmp_path_factory.mktemp("bare-run"), port_offset=21000)
    env = {**os.environ, "NGINX": "/nonexistent/nginx", "PROMETHEUS": "/nonexistent/prometheus"}
    cmd = layout.runner_command()
    up = subprocess.run(
        [*cmd, "up", "--no-seed", "--gateway-replicas", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        assert up.returncode == 0, up.stderr
        assert "skipped     nginx edge" in up.stdout
        assert "apt-get install nginx-light" in up.stdout
        assert "skipped     Prometheus" in up.stdout
        with service_client(layout) as direct:
            assert direct.get(f"{layout.url('gateway')}/readyz").status_code == 200
    finally:
        subprocess.run([*cmd, "down"], cwd=ROOT, capture_output=True, timeout=120)
