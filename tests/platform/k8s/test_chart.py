"""charts/service: lint-clean, values.schema.json refuses bad values with a clear message, values from the catalog."""

from __future__ import annotations

import copy
from typing import Any

import helm_python
import pytest
from shop_platform.k8s.components import SERVICE_CHART_DIR
from shop_platform.k8s.values import ServiceInputs, service_values
from shop_platform.network import endpoint_cidrs

from services import catalog
from tools.render import render_service_chart

from .conftest import STACKS, layer_for


def _good() -> dict[str, Any]:
    return service_values(
        catalog.get("orders"),
        layer_for("dev"),
        ServiceInputs(
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/shop-dev/orders",
            role_arn="arn:aws:iam::111122223333:role/dev-orders-db",
            db_host="dev-orders.abc.eu-west-1.rds.amazonaws.com",
            db_user="orders_app",
        ),
    )


def _lint_problems(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    result = helm_python.lint(str(SERVICE_CHART_DIR), values, strict=True)
    return [m for m in result["messages"] if m["severity"] > 1]  # 1 = INFO ("icon is recommended")


def test_chart_lints_clean_with_its_defaults() -> None:
    """`helm lint --strict` on the chart as committed: no warnings or errors (only the INFO about an icon)."""
    assert _lint_problems() == []


@pytest.mark.parametrize("stack", STACKS)
def test_chart_lints_clean_with_every_computed_values_set(stack: str) -> None:
    """The values Pulumi passes for each service on each stack lint clean, so `helm upgrade` never refuses them."""
    from .conftest import render_stack

    for r in render_stack(stack).recording.of_type("kubernetes:helm.sh/v3:Release"):
        if r.inputs["chart"].endswith("charts/service"):
            from tools.render import integral

            assert _lint_problems(integral(r.inputs["values"])) == [], r.inputs["name"]


def _set(values: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(values)
    node = out
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return out


# (path, bad value, text the error must contain): one case per schema or template rule.
BAD_VALUES = [
    ("image.tag", "latest", "/image/tag"),
    ("image.tag", "", "/image/tag"),
    ("image.digest", "sha256:abc", "/image/digest"),
    ("image.repository", "", "/image/repository"),
    ("image.pullPolicy", "Never", "/image/pullPolicy"),
    ("name", "Orders_Service", "/name"),
    ("port", 80, "/port"),
    ("port", "8004", "/port"),
    ("env", {"DATABASE_URL": "postgresql://u:p@h/db"}, "invalid propertyName 'DATABASE_URL'"),
    ("env", {"SERVICE_PRIVATE_KEY": "-----BEGIN"}, "invalid propertyName 'SERVICE_PRIVATE_KEY'"),
    ("env", {"ADMIN_PASSWORD": "x"}, "invalid propertyName 'ADMIN_PASSWORD'"),
    ("env", {"lower_case": "x"}, "invalid propertyName 'lower_case'"),
    ("env", {"LOG_LEVEL": 1}, "/env/LOG_LEVEL"),
    ("serviceAccount.roleArn", "arn:aws:iam::123:role/x", "/serviceAccount/roleArn"),
    ("resources.limits.memory", None, "/resources/limits"),  # null removes the default: a limit is required
    ("resources.requests.memory", "200MB", "/resources/requests/memory"),
    ("autoscaling.minReplicas", 0, "/autoscaling/minReplicas"),
    ("autoscaling.targetCPUUtilizationPercentage", 100, "/autoscaling/targetCPUUtilizationPercentage"),
    ("topologySpread.zoneWhenUnsatisfiable", "Sometimes", "/topologySpread/zoneWhenUnsatisfiable"),
    ("networkPolicy.database.cidrs", ["0.0.0.0/0"], "/networkPolicy/database/cidrs"),
    ("networkPolicy.database.cidrs", ["10.0.0.0/33"], "/networkPolicy/database/cidrs"),
    ("networkPolicy.toServices", [{"name": "products"}], "/networkPolicy/toServices/0"),
    ("networkPolicy.fromServices", ["gateway", "gateway"], "/networkPolicy/fromServices"),
    ("networkPolicy.prometheus.podLabels", None, "/networkPolicy/prometheus"),
    ("networkPolicy.hbonePort", 70000, "/networkPolicy/hbonePort"),
    ("networkPolicy.hbonePort", "15008", "/networkPolicy/hbonePort"),
    ("serviceMonitor.interval", "often", "/serviceMonitor/interval"),
    ("replicas", 3, "replicas"),  # unknown keys are refused: a typo never silently falls back to a default
    ("image.tga", "v1", "tga"),
    ("podDisruptionBudget.maxUnavailable", 0, "/podDisruptionBudget/maxUnavailable"),
    ("terminationGracePeriodSeconds", 1, "/terminationGracePeriodSeconds"),
    ("name", None, "name"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_VALUES, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD_VALUES])
def test_schema_refuses_bad_values_at_render_with_the_field_named(path: str, value: Any, message: str) -> None:
    """A bad value fails `helm template/upgrade` before anything reaches the cluster, and the error names the
    field, so the fix is obvious."""
    values = _set(_good(), path, value)
    with pytest.raises(helm_python.HelmError) as err:
        render_service_chart(values, "orders", "shop")
    assert message in str(err.value)


def test_good_values_render() -> None:
    """The baseline of the cases above renders: each case fails because of its one change."""
    kinds = sorted(o["kind"] for o in render_service_chart(_good(), "orders", "shop"))
    assert kinds == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "autoscaling",
            {"minReplicas": 5, "maxReplicas": 2, "targetCPUUtilizationPercentage": 70},
            "autoscaling.minReplicas (5) must not exceed autoscaling.maxReplicas (2)",
        ),
        ("env", {"SECRETS_DIR": "/elsewhere"}, "env.SECRETS_DIR is set by the chart"),
        (
            "networkPolicy.database",
            {"enabled": True, "port": 5432},
            "networkPolicy.database.enabled needs database.cidrs",
        ),
    ],
)
def test_template_refuses_what_json_schema_cannot_express(path: str, value: Any, message: str) -> None:
    """Cross-field rules live in _helpers.tpl and fail the render with a sentence, not a stack trace."""
    with pytest.raises(helm_python.HelmError) as err:
        render_service_chart(_set(_good(), path, value), "orders", "shop")
    assert message in str(err.value)


# --- values computed from the catalog -------------------------------------------------------------------------


def test_network_policy_values_follow_the_catalog_for_every_service() -> None:
    """Callers, callees and their ports come from services/catalog.py only, so adding a call is one catalog edit."""
    layer = layer_for("dev")
    for svc in catalog.SERVICES:
        np = service_values(svc, layer, ServiceInputs("r"))["networkPolicy"]

        # Forwarded public routes (the gateway), internal calls, the token issuer's JWKS (users) for those who
        # verify tokens, and the public API (the gateway) for its clients (the storefront).
        def calls(src: catalog.Service, dst: catalog.Service) -> bool:
            return src is not dst and (
                dst.name in catalog.forwarded_to(src.name)
                or dst.name in catalog.callees_of(src.name)
                or (dst.name == "users" and src.verifies_user_tokens)
                or (dst.name == catalog.GATEWAY and src.calls_public_api)
            )

        assert np["toServices"] == [{"name": s.name, "port": s.port} for s in catalog.SERVICES if calls(svc, s)]
        assert np["fromServices"] == [s.name for s in catalog.SERVICES if calls(s, svc)]
        assert np["database"]["enabled"] is svc.owns_database
        assert bool(np["fromPeers"]) is (svc.name == catalog.GATEWAY or bool(svc.edge_pages)), (
            "only the gateway and the page server are reachable from the edge"
        )


def test_eks_services_with_a_database_get_irsa_and_verified_tls_and_others_get_neither() -> None:
    """On EKS a service reads its RDS secret through its own IAM role and verifies the server certificate; a
    service without a database gets no role and no route to AWS APIs."""
    layer = layer_for("prod")
    for svc in catalog.SERVICES:
        v = service_values(
            svc, layer, ServiceInputs("r", role_arn="arn:aws:iam::111122223333:role/x", db_host="h", db_user="u")
        )
        if svc.owns_database:
            assert v["serviceAccount"]["roleArn"] == "arn:aws:iam::111122223333:role/x"
            assert v["env"]["DB_SSLMODE"] == "verify-full"
            assert v["env"]["DB_NAME"] == svc.database_name
            assert v["env"]["DB_IAM_USER"] == "u"
            endpoints = list(endpoint_cidrs(layer.vpc_cidr or ""))
            assert v["networkPolicy"]["awsApis"] == {"enabled": True, "cidrs": endpoints}
        else:
            assert "DB_IAM_USER" not in v["env"]
            assert v["networkPolicy"]["awsApis"] == {"enabled": False}


def test_services_that_trust_forwarded_addresses_believe_them_only_from_pod_addresses() -> None:
    """Login throttling and rate limits key on the client address: the services whose catalog entry trusts
    X-Forwarded-For believe it from the pod network only (the gateway's and NGINX's pods), never from anywhere;
    the others are given no such setting."""
    for stack in ("dev", "local"):
        layer = layer_for(stack)
        for svc in catalog.SERVICES:
            env = service_values(svc, layer, ServiceInputs("r"))["env"]
            expected = layer.trusted_proxy_cidr if svc.trusts_forwarded_for else None
            assert env.get("TRUSTED_PROXIES") == expected, (stack, svc.name)
    assert layer_for("dev").trusted_proxy_cidr == layer_for("dev").vpc_cidr
    assert layer_for("local").trusted_proxy_cidr == "10.244.0.0/16"


def test_local_sizing_is_small_and_images_are_never_pulled() -> None:
    """kind fits on a laptop (one replica, small requests) and uses the images `kind load` put on the nodes."""
    layer = layer_for("local")
    for svc in catalog.SERVICES:
        v = service_values(svc, layer, ServiceInputs(f"shop/{svc.name}"))
        assert v["autoscaling"]["minReplicas"] == 1
        assert v["autoscaling"]["maxReplicas"] <= 2
        assert v["image"]["pullPolicy"] == "IfNotPresent"
        assert v["resources"]["requests"]["cpu"] == "25m"
        assert v["serviceAccount"]["roleArn"] == ""


def test_prod_spreads_replicas_across_zones_strictly_and_scales_as_the_catalog_says() -> None:
    """prod has nodes in three zones: a zone outage must not take every replica of a service."""
    layer = layer_for("prod")
    for svc in catalog.SERVICES:
        v = service_values(svc, layer, ServiceInputs("r"))
        assert v["topologySpread"]["zoneWhenUnsatisfiable"] == "DoNotSchedule"
        assert (v["autoscaling"]["minReplicas"], v["autoscaling"]["maxReplicas"]) == (
            svc.scaling.min_replicas,
            svc.scaling.max_replicas,
        )
    assert (
        service_values(catalog.get("orders"), layer_for("dev"), ServiceInputs("r"))["topologySpread"][
            "zoneWhenUnsatisfiable"
        ]
        == "ScheduleAnyway"
    )
