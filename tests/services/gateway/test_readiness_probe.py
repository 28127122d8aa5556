"""The readiness probe the Helm chart gives a gateway pod passes while every upstream is down."""

from __future__ import annotations

from typing import Any

import httpx

from services import catalog
from tests.services.gateway.conftest import GatewayFactory
from tests.support.procs import free_port
from tools.render import render_service_chart


def _readiness_probe(service: str) -> dict[str, Any]:
    values = {"name": service, "port": catalog.get(service).port}
    [deployment] = [
        d for d in render_service_chart(values, name=service, namespace="shop") if d["kind"] == "Deployment"
    ]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    probe: dict[str, Any] = container["readinessProbe"]
    return probe


def test_the_charts_readiness_probe_passes_on_a_gateway_whose_upstreams_are_all_down(
    start_gateway: GatewayFactory,
) -> None:
    """Kubernetes takes a NotReady gateway pod out of the NGINX Gateway's endpoints; if the probe followed the
    upstreams, one service down (a database failover, a failed rollout) would take every gateway pod out,
    the ALB and Route 53 health checks would fail and the whole API would fail over to maintenance, and a
    gateway release could not become ready before all five upstreams. The probe the chart renders must ask
    something local to the gateway process."""
    probe = _readiness_probe(catalog.GATEWAY)
    nobody = {s.name: f"http://127.0.0.1:{free_port()}" for s in catalog.SERVICES if s.public_prefixes}
    gateway = start_gateway(service_urls=nobody, READINESS_TIMEOUT_S="0.5")
    r = httpx.get(gateway.url + probe["httpGet"]["path"], timeout=probe["timeoutSeconds"])
    assert r.status_code == 200, r.text
    assert httpx.get(gateway.url + "/readyz/upstreams", timeout=5).status_code == 503  # and they are all down
