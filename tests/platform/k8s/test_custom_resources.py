"""Custom resources checked against schemas generated from their CRDs (npm kubernetes-models, pinned in
charts/tools/package-lock.json): Gateway API (Gateway, HTTPRoute) and Prometheus Operator (ServiceMonitor,
PrometheusRule). ECK's and the AWS Load Balancer Controller's have no such package, and Istio's
(@kubernetes-models/istio) is not installed yet: they stay listed as unchecked in the plan (manifests/releases.json)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tools.plan import REPO_ROOT
from tools.render import is_custom_resource

from .conftest import StackRender, render_stack

TOOLS = REPO_ROOT / "charts" / "tools"
CHECKED_KINDS = {"Gateway", "HTTPRoute", "ServiceMonitor", "PrometheusRule", "PodMonitor"}
UNCHECKED_KINDS = {
    "Elasticsearch",
    "Kibana",
    "Logstash",
    "NginxProxy",
    "TargetGroupBinding",
    "PeerAuthentication",
    "AuthorizationPolicy",
}


def validate(objs: list[dict[str, Any]], tmp_path: Path) -> dict[str, list[str]]:
    assert (TOOLS / "node_modules" / "@kubernetes-models" / "gateway-api").is_dir(), (
        "CRD validators are installed by `make crd-validators` (make test does)"
    )
    path = tmp_path / "crs.json"
    path.write_text(json.dumps(objs))
    proc = subprocess.run(
        ["node", str(TOOLS / "validate-crs.mjs"), str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, list[str]] = json.loads(proc.stdout)
    return result


def test_custom_resources_match_their_crd_schemas(stack_render: StackRender, tmp_path: Path) -> None:
    """A Gateway, route, ServiceMonitor or PrometheusRule the API server would reject (a misspelt field, a wrong
    enum) fails here; the kinds without a schema package are exactly the ones the plan lists as unchecked."""
    crs = [o for o in stack_render.rendered.objects if is_custom_resource(o)]
    result = validate(crs, tmp_path)
    assert result["errors"] == []
    assert {line.split()[1] for line in result["checked"]} == CHECKED_KINDS
    assert {line.split()[1] for line in result["unknown"]} <= UNCHECKED_KINDS
    from tools.render import CRD_VALIDATED

    assert {kind for _, kind in CRD_VALIDATED} == CHECKED_KINDS, "the plan and this test agree on what is checked"


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("HTTPRoute", ["spec", "rules", 0, "matches", 0, "path", "type"], "Prefix"),
        ("Gateway", ["spec", "listeners", 0, "protocol"], 80),
        ("ServiceMonitor", ["spec", "endpoints", 0, "scheme"], "ftp"),
        ("PrometheusRule", ["spec", "groups", 0, "rules", 0, "for"], "one minute"),
    ],
)
def test_the_crd_validators_reject_a_broken_resource(kind: str, path: list[Any], value: Any, tmp_path: Path) -> None:
    """Guard: one wrong value in a rendered resource is reported, so an empty error list is evidence."""
    obj = copy.deepcopy(next(o for o in render_stack("dev").rendered.objects if o["kind"] == kind))
    node: Any = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert validate([obj], tmp_path)["errors"], f"{kind} with {path[-1]}={value!r} passed"
