"""From the rendered NetworkPolicies alone: each service reaches exactly what the catalog allows, nothing else.

A small evaluator of Kubernetes NetworkPolicy semantics (a pod is isolated in a direction once any policy of that
type selects it; a connection needs the source's egress and the destination's ingress to allow it) runs over the
manifests of every stack and compares every (source, destination, port) with what the catalog says.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest
from shop_platform.k8s import spec as k
from shop_platform.network import plan_subnets

from services import catalog

from .conftest import StackRender


@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str | None  # None: outside the cluster (an IP only)
    labels: dict[str, str] = field(default_factory=dict)
    ip: str = ""


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values) \
                or (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_ns: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if not other.ip:
            return False
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not _selects(peer["namespaceSelector"], ns_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return _selects(peer.get("podSelector"), other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(p.get("port") in (None, port) and p.get("protocol", "TCP") == protocol for p in ports)


class Policies:
    def __init__(self, manifests: list[dict[str, Any]]) -> None:
        self.items = [m for m in manifests if m["kind"] == "NetworkPolicy"]

    def _allowed(self, direction: str, subject: Endpoint, other: Endpoint, port: int, protocol: str) -> bool:
        if subject.namespace is None:
            return True  # outside the cluster: no policy applies
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        selecting = [p for p in self.items if p["metadata"]["namespace"] == subject.namespace
                     and direction in p["spec"].get("policyTypes", ["Ingress"])
                     and _selects(p["spec"]["podSelector"], subject.labels)]
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if (peers is None or any(_peer_matches(peer, subject.namespace, other) for peer in peers)) \
                        and _port_matches(rule.get("ports"), port, protocol):
                    return True
        return False

    def can_connect(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self._allowed("Egress", src, dst, port, protocol) and self._allowed("Ingress", dst, src, port, protocol)


def _world(render: StackRender) -> dict[str, Endpoint]:
    layer = render.layer
    pod_net = (plan_subnets(layer.vpc_cidr, 3).private[0] if layer.eks and layer.vpc_cidr else layer.pod_cidr)
    hosts = ipaddress.ip_network(pod_net or "10.244.0.0/16").hosts()
    ep: dict[str, Endpoint] = {}
    for obj in render.rendered.objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            labels = obj["spec"]["template"]["metadata"]["labels"]
            ep[obj["metadata"]["name"]] = Endpoint(obj["metadata"]["name"], obj["metadata"]["namespace"], labels,
                                                   str(next(hosts)))
    ep["nginx-data-plane"] = Endpoint("nginx", k.GATEWAY_NS, dict(k.GATEWAY_POD_LABELS), str(next(hosts)))
    ep["prometheus"] = Endpoint("prometheus", k.MONITORING_NS, dict(k.PROMETHEUS_POD_LABELS), str(next(hosts)))
    ep["kube-dns"] = Endpoint("kube-dns", "kube-system", dict(k.DNS_POD_LABELS), str(next(hosts)))
    ep["stranger-other-ns"] = Endpoint("stranger", "default", {"app.kubernetes.io/name": "gateway"}, str(next(hosts)))
    ep["stranger-same-ns"] = Endpoint("stranger", k.SERVICES_NS, {"app": "debug"}, str(next(hosts)))
    ep["internet"] = Endpoint("internet", None, ip="8.8.8.8")
    ep["aws-api"] = Endpoint("aws-api", None, ip="52.94.0.10")
    if layer.eks:
        assert layer.vpc_cidr
        db_net = ipaddress.ip_network(layer.database_cidrs[0])
        ep["rds"] = Endpoint("rds", None, ip=str(db_net.network_address + 10))
        ep["vpc-host"] = Endpoint("vpc-host", None,
                                  ip=str(ipaddress.ip_network(plan_subnets(layer.vpc_cidr, 3).public[0])[10]))
    return ep


def test_each_service_reaches_exactly_the_services_the_catalog_allows(stack_render: StackRender) -> None:
    """Service-to-service traffic is allowed iff the catalog lets the source call the callee's /internal routes
    or forward public routes to it (or the callee is the token issuer, whose public JWKS every other service
    reads to verify user tokens), on the callee's port only: a compromised service cannot reach anything its
    code was never meant to call."""
    issuer = next(s for s in catalog.SERVICES if "/.well-known/jwks.json" in s.public_prefixes)
    policies, ep = Policies(stack_render.rendered.objects), _world(stack_render)
    for src in catalog.SERVICES:
        for dst in catalog.SERVICES:
            if src is dst:
                continue
            expected = (dst.name in catalog.callees_of(src.name) or dst.name in catalog.forwarded_to(src.name)
                        or dst is issuer)
            assert policies.can_connect(ep[src.name], ep[dst.name], dst.port) is expected, (src.name, dst.name)
            assert not policies.can_connect(ep[src.name], ep[dst.name], dst.port + 1000), "other ports stay closed"


def test_only_the_nginx_data_plane_reaches_the_gateway_and_only_prometheus_scrapes(stack_render: StackRender) -> None:
    """The edge enters through the gateway service alone; Prometheus reaches every service's metrics port; pods
    in other namespaces, or unlabelled pods in the services' namespace, reach nothing."""
    policies, ep = Policies(stack_render.rendered.objects), _world(stack_render)
    for svc in catalog.SERVICES:
        assert policies.can_connect(ep["nginx-data-plane"], ep[svc.name], svc.port) is (svc.name == catalog.GATEWAY)
        assert policies.can_connect(ep["prometheus"], ep[svc.name], svc.port)
        assert not policies.can_connect(ep["stranger-other-ns"], ep[svc.name], svc.port)
        assert not policies.can_connect(ep["stranger-same-ns"], ep[svc.name], svc.port)
        assert not policies.can_connect(ep[svc.name], ep["stranger-same-ns"], 8080), "default-deny egress"


def test_egress_is_dns_the_database_and_on_eks_aws_apis_and_nothing_else(stack_render: StackRender) -> None:
    """Every service resolves names; a service reaches a database only if it owns one (its RDS subnets on EKS,
    the in-cluster PostgreSQL on kind), and AWS APIs (STS, Secrets Manager on 443 outside the VPC) only on EKS
    where it reads its database secret; the internet and the rest of the VPC stay closed."""
    policies, ep, layer = Policies(stack_render.rendered.objects), _world(stack_render), stack_render.layer
    for svc in catalog.SERVICES:
        src = ep[svc.name]
        assert policies.can_connect(src, ep["kube-dns"], 53, "UDP")
        assert policies.can_connect(src, ep["kube-dns"], 53, "TCP")
        assert not policies.can_connect(src, ep["kube-dns"], 8080)
        assert not policies.can_connect(src, ep["internet"], 80)
        if layer.eks:
            assert policies.can_connect(src, ep["rds"], 5432) is svc.owns_database
            assert policies.can_connect(src, ep["aws-api"], 443) is svc.owns_database
            assert not policies.can_connect(src, ep["vpc-host"], 443), "443 inside the VPC stays closed"
            assert not policies.can_connect(src, ep["rds"], 443)
        else:
            assert policies.can_connect(src, ep["postgres"], 5432) is svc.owns_database
            assert not policies.can_connect(src, ep["aws-api"], 443)
    if not layer.eks:
        assert not policies.can_connect(ep["stranger-same-ns"], ep["postgres"], 5432)
        assert not policies.can_connect(ep["prometheus"], ep["postgres"], 5432)


def _without_ingress_isolation(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifests minus the namespace default-deny and every per-service ingress allow-list."""
    return [m for m in manifests if not (m["kind"] == "NetworkPolicy" and (
        m["metadata"]["name"] == "default-deny" or m["metadata"]["name"].endswith("-ingress")))]


def _with_allow_all_to_products(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    allow_all = {"kind": "NetworkPolicy", "metadata": {"name": "oops", "namespace": k.SERVICES_NS},
                 "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "products"}},
                          "policyTypes": ["Ingress"], "ingress": [{}]}}
    return [*manifests, allow_all]


@pytest.mark.parametrize("breakage", [_without_ingress_isolation, _with_allow_all_to_products])
def test_the_evaluator_notices_a_broken_policy(breakage: Any) -> None:
    """Guard: without ingress isolation, or with an allow-all rule, a stranger reaches products, so the passing
    checks above are evidence and not an artefact of the evaluator."""
    from .conftest import render_stack

    render = render_stack("dev")
    products = catalog.get("products")
    ep = _world(render)
    assert not Policies(render.rendered.objects).can_connect(ep["stranger-other-ns"], ep["products"], products.port)
    assert Policies(breakage(render.rendered.objects)).can_connect(ep["stranger-other-ns"], ep["products"],
                                                                   products.port)
