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
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_ns: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if not other.ip:
            return False
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", [])
        )
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
        selecting = [
            p
            for p in self.items
            if p["metadata"]["namespace"] == subject.namespace
            and direction in p["spec"].get("policyTypes", ["Ingress"])
            and _selects(p["spec"]["podSelector"], subject.labels)
        ]
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if (
                    peers is None or any(_peer_matches(peer, subject.namespace, other) for peer in peers)
                ) and _port_matches(rule.get("ports"), port, protocol):
                    return True
        return False

    def can_connect(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self._allowed("Egress", src, dst, port, protocol) and self._allowed("Ingress", dst, src, port, protocol)


def _world(render: StackRender) -> dict[str, Endpoint]:
    layer = render.layer
    pod_net = plan_subnets(layer.vpc_cidr, 3).private[0] if layer.eks and layer.vpc_cidr else layer.pod_cidr
    hosts = ipaddress.ip_network(pod_net or "10.244.0.0/16").hosts()
    ep: dict[str, Endpoint] = {}
    for obj in render.rendered.objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            labels = obj["spec"]["template"]["metadata"]["labels"]
            ep[obj["metadata"]["name"]] = Endpoint(
                obj["metadata"]["name"], obj["metadata"]["namespace"], labels, str(next(hosts))
            )
    ep["nginx-data-plane"] = Endpoint("nginx", k.GATEWAY_NS, dict(k.GATEWAY_POD_LABELS), str(next(hosts)))
    ep["prometheus"] = Endpoint("prometheus", k.MONITORING_NS, dict(k.PROMETHEUS_POD_LABELS), str(next(hosts)))
    ep["kube-dns"] = Endpoint("kube-dns", "kube-system", dict(k.DNS_POD_LABELS), str(next(hosts)))
    ep["stranger-other-ns"] = Endpoint("stranger", "default", {"app.kubernetes.io/name": "gateway"}, str(next(hosts)))
    ep["stranger-same-ns"] = Endpoint("stranger", k.SERVICES_NS, {"app": "debug"}, str(next(hosts)))
    ep["internet"] = Endpoint("internet", None, ip="8.8.8.8")
    ep["aws-api"] = Endpoint("aws-api", None, ip="52.94.0.10")
    if layer.eks:
        assert layer.vpc_cidr
        # An interface endpoint's address (STS, Secrets Manager...): in a private subnet.
        ep["aws-api"] = Endpoint(
            "aws-api", None, ip=str(ipaddress.ip_network(plan_subnets(layer.vpc_cidr, 3).private[1])[4000])
        )
        db_net = ipaddress.ip_network(layer.database_cidrs[0])
        ep["rds"] = Endpoint("rds", None, ip=str(db_net.network_address + 10))
        ep["vpc-host"] = Endpoint(
            "vpc-host", None, ip=str(ipaddress.ip_network(plan_subnets(layer.vpc_cidr, 3).public[0])[10])
        )
    return ep


def test_each_service_reaches_exactly_the_services_the_catalog_allows(stack_render: StackRender) -> None:
    """Service-to-service traffic is allowed iff the catalog lets the source call the callee's /internal routes
    or forward public routes to it (or the callee is the token issuer, whose public JWKS every service that
    verifies user tokens reads; or the callee forwards the public API the source is a client of), on the
    callee's port only: a compromised service cannot reach anything its code was never meant to call."""
    issuer = next(s for s in catalog.SERVICES if "/.well-known/jwks.json" in s.public_prefixes)
    policies, ep = Policies(stack_render.rendered.objects), _world(stack_render)
    for src in catalog.SERVICES:
        for dst in catalog.SERVICES:
            if src is dst:
                continue
            expected = (
                dst.name in catalog.callees_of(src.name)
                or dst.name in catalog.forwarded_to(src.name)
                or (dst is issuer and src.verifies_user_tokens)
                or (src.calls_public_api and dst.forwards_public_routes)
            )
            assert policies.can_connect(ep[src.name], ep[dst.name], dst.port) is expected, (src.name, dst.name)
            assert not policies.can_connect(ep[src.name], ep[dst.name], dst.port + 1000), "other ports stay closed"


def test_only_the_nginx_data_plane_reaches_the_gateway_and_only_prometheus_scrapes(stack_render: StackRender) -> None:
    """The edge enters through the gateway service (the API) and the page server (the storefront) alone;
    Prometheus reaches every service's metrics port; pods in other namespaces, or unlabelled pods in the
    services' namespace, reach nothing."""
    policies, ep = Policies(stack_render.rendered.objects), _world(stack_render)
    for svc in catalog.SERVICES:
        from_edge = svc.name == catalog.GATEWAY or bool(svc.edge_pages)
        assert policies.can_connect(ep["nginx-data-plane"], ep[svc.name], svc.port) is from_edge
        assert policies.can_connect(ep["prometheus"], ep[svc.name], svc.port)
        assert not policies.can_connect(ep["stranger-other-ns"], ep[svc.name], svc.port)
        assert not policies.can_connect(ep["stranger-same-ns"], ep[svc.name], svc.port)
        assert not policies.can_connect(ep[svc.name], ep["stranger-same-ns"], 8080), "default-deny egress"


def test_egress_is_dns_the_database_and_on_eks_aws_apis_and_nothing_else(stack_render: StackRender) -> None:
    """Every service resolves names; a service reaches a database only if it owns one (its RDS subnets on EKS,
    the in-cluster PostgreSQL on kind), and AWS APIs (the STS interface endpoint in the private subnets, on
    443) only on EKS where it signs its database token; the internet and the rest of the VPC stay closed."""
    policies, ep, layer = Policies(stack_render.rendered.objects), _world(stack_render), stack_render.layer
    for svc in catalog.SERVICES:
        src = ep[svc.name]
        assert policies.can_connect(src, ep["kube-dns"], 53, "UDP")
        assert policies.can_connect(src, ep["kube-dns"], 53, "TCP")
        assert not policies.can_connect(src, ep["kube-dns"], 8080)
        assert not policies.can_connect(src, ep["internet"], 80)
        assert not policies.can_connect(src, ep["internet"], 443)
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
    """The manifests minus every policy that isolates the services' pods for ingress: the namespace default-deny,
    the per-service allow-lists and the kubelet-probe allowance of the mesh."""
    isolating = ("default-deny", "allow-kubelet-probes")
    return [
        m
        for m in manifests
        if not (
            m["kind"] == "NetworkPolicy"
            and (m["metadata"]["name"] in isolating or m["metadata"]["name"].endswith("-ingress"))
        )
    ]


def _with_allow_all_to_products(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    allow_all = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "oops", "namespace": k.SERVICES_NS},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "products"}},
            "policyTypes": ["Ingress"],
            "ingress": [{}],
        },
    }
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
    assert Policies(breakage(render.rendered.objects)).can_connect(
        ep["stranger-other-ns"], ep["products"], products.port
    )


# --- the add-on namespaces ----------------------------------------------------------------------------------


def _addon_world(render: StackRender) -> dict[str, Endpoint]:
    """The add-ons' pods with the labels their pinned upstreams give them (cited in shop_platform.k8s.netpol),
    plus strangers: an unlabelled pod in each namespace."""
    from shop_platform.k8s import netpol, objects

    hosts = ipaddress.ip_network("10.250.0.0/16").hosts()

    def pod(name: str, ns: str, labels: dict[str, str]) -> Endpoint:
        return Endpoint(name, ns, labels, str(next(hosts)))

    world = {
        "prometheus": pod("prometheus", k.MONITORING_NS, dict(k.PROMETHEUS_POD_LABELS)),
        "alertmanager": pod("alertmanager", k.MONITORING_NS, dict(netpol.ALERTMANAGER_POD_LABELS)),
        "grafana": pod("grafana", k.MONITORING_NS, dict(netpol.GRAFANA_POD_LABELS)),
        "prometheus-operator": pod("operator", k.MONITORING_NS, dict(netpol.PROMETHEUS_OPERATOR_POD_LABELS)),
        "kube-state-metrics": pod("ksm", k.MONITORING_NS, {"app.kubernetes.io/name": "kube-state-metrics"}),
        "nginx-control-plane": pod("ngf", k.GATEWAY_NS, dict(netpol.NGF_CONTROL_PLANE_POD_LABELS)),
        "nginx-data-plane": pod("nginx", k.GATEWAY_NS, dict(k.GATEWAY_POD_LABELS)),
        "gateway": _world(render)[catalog.GATEWAY],
        "kube-dns": pod("kube-dns", "kube-system", dict(k.DNS_POD_LABELS)),
        "elasticsearch": pod("es", k.LOGGING_NS, dict(netpol.ELASTICSEARCH_POD_LABELS)),
        "elasticsearch-2": pod("es2", k.LOGGING_NS, dict(netpol.ELASTICSEARCH_POD_LABELS)),
        "kibana": pod("kibana", k.LOGGING_NS, {**netpol.KIBANA_POD_LABELS, "kibana.k8s.elastic.co/name": "kibana"}),
        "logstash": pod("logstash", k.LOGGING_NS, dict(netpol.LOGSTASH_POD_LABELS)),
        "ilm-job": pod("ilm", k.LOGGING_NS, dict(netpol.ILM_JOB_POD_LABELS)),
        "fluent-bit": pod("fluent-bit", k.LOGGING_AGENT_NS, dict(netpol.FLUENT_BIT_POD_LABELS)),
        "eck-operator": pod("eck", k.ECK_NS, dict(netpol.ECK_OPERATOR_POD_LABELS)),
        "internet": Endpoint("internet", None, ip="8.8.8.8"),
    }
    for ns in objects.namespace_names(render.layer):
        world[f"stranger-{ns}"] = pod("stranger", ns, {"app": "debug"})
    if render.layer.eks:
        assert render.layer.vpc_cidr
        world["alb"] = Endpoint(
            "alb", None, ip=str(ipaddress.ip_network(plan_subnets(render.layer.vpc_cidr, 3).public[0])[10])
        )
    return world


@pytest.mark.parametrize("stack", ["dev", "prod", "local", "local-light"])
def test_every_namespace_the_layer_creates_has_a_default_deny(stack: str) -> None:
    """Not only the services' namespace: a pod in monitoring, logging, the gateway's or the operators' namespace is
    isolated in both directions unless a policy names the flow."""
    from .conftest import render_stack

    objs = render_stack(stack).rendered.objects
    created = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"}
    denied = {
        o["metadata"]["namespace"]
        for o in objs
        if o["kind"] == "NetworkPolicy"
        and o["spec"]["podSelector"] == {}
        and set(o["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not o["spec"].get("ingress")
        and not o["spec"].get("egress")
    }
    assert created - denied == set()


def test_only_prometheus_reaches_alertmanager(stack_render: StackRender) -> None:
    """Alertmanager's API is unauthenticated and creates silences: only Prometheus (which sends it alerts) gets in,
    not Grafana, not the services, not a stray pod in monitoring."""
    policies, w = Policies(stack_render.rendered.objects), _addon_world(stack_render)
    assert policies.can_connect(w["prometheus"], w["alertmanager"], 9093)
    for name, src in w.items():
        if name not in ("prometheus", "alertmanager") and src.namespace is not None:
            assert not policies.can_connect(src, w["alertmanager"], 9093), name
    sources = [(w["stranger-shop"], "shop")] + [(_world(stack_render)[s.name], s.name) for s in catalog.SERVICES]
    for src, name in sources:
        assert not policies.can_connect(src, w["alertmanager"], 9093), name


def test_only_fluent_bit_reaches_logstashs_gelf_input(stack_render: StackRender) -> None:
    """A pod that could write to the GELF input could forge any service's log lines: Fluent Bit only."""
    if not stack_render.layer.logging:
        pytest.skip("no log pipeline on this stack")
    policies, w = Policies(stack_render.rendered.objects), _addon_world(stack_render)
    for proto in ("TCP", "UDP"):
        assert policies.can_connect(w["fluent-bit"], w["logstash"], k.GELF_PORT, proto)
        for name, src in w.items():
            if name not in ("fluent-bit", "logstash") and src.namespace is not None:
                assert not policies.can_connect(src, w["logstash"], k.GELF_PORT, proto), (name, proto)


ADDON_FLOWS = [  # (source, destination, port, protocol): what each add-on needs, and must keep
    ("grafana", "prometheus", 9090, "TCP"),
    ("prometheus", "grafana", 3000, "TCP"),
    ("prometheus", "kube-state-metrics", 8080, "TCP"),
    ("prometheus", "prometheus-operator", 10250, "TCP"),
    ("prometheus", "gateway", catalog.get(catalog.GATEWAY).port, "TCP"),
    ("prometheus", "kube-dns", 9153, "TCP"),
    ("grafana", "kube-dns", 53, "UDP"),
    ("nginx-data-plane", "gateway", catalog.get(catalog.GATEWAY).port, "TCP"),
    ("nginx-data-plane", "nginx-control-plane", 8443, "TCP"),
    ("nginx-data-plane", "kube-dns", 53, "UDP"),
    ("prometheus", "nginx-data-plane", 9113, "TCP"),
    ("prometheus", "nginx-control-plane", 9113, "TCP"),
    ("fluent-bit", "kube-dns", 53, "UDP"),
    ("kibana", "elasticsearch", 9200, "TCP"),
    ("logstash", "elasticsearch", 9200, "TCP"),
    ("ilm-job", "elasticsearch", 9200, "TCP"),
    ("eck-operator", "elasticsearch", 9200, "TCP"),
    ("elasticsearch", "elasticsearch-2", 9300, "TCP"),
]
LOGGING_PODS = {"elasticsearch", "elasticsearch-2", "kibana", "logstash", "ilm-job", "fluent-bit", "eck-operator"}


def test_every_add_on_keeps_the_flows_it_needs(stack_render: StackRender) -> None:
    """Default-deny everywhere must not break the platform: scraping, dashboards, the edge, the log path."""
    policies, w = Policies(stack_render.rendered.objects), _addon_world(stack_render)
    for src, dst, port, proto in ADDON_FLOWS:
        if {src, dst} & LOGGING_PODS and not stack_render.layer.logging:
            continue
        assert policies.can_connect(w[src], w[dst], port, proto), (src, dst, port)


def test_the_edge_reaches_only_the_data_planes_listener(stack_render: StackRender) -> None:
    """The ALB (EKS) or the kind node (NodePort) reaches NGINX's listener; nothing from outside reaches the control
    plane, and the data plane reaches no service but the gateway and the page server."""
    policies, w = Policies(stack_render.rendered.objects), _addon_world(stack_render)
    edge = w["alb"] if stack_render.layer.eks else w["internet"]
    assert policies.can_connect(edge, w["nginx-data-plane"], k.GATEWAY_LISTENER_PORT)
    assert not policies.can_connect(edge, w["nginx-data-plane"], 8081)
    assert not policies.can_connect(w["stranger-nginx-gateway"], w["nginx-control-plane"], 8443)
    services = _world(stack_render)
    for svc in catalog.SERVICES:
        reached = policies.can_connect(w["nginx-data-plane"], services[svc.name], svc.port)
        assert reached is (svc.name == catalog.GATEWAY or bool(svc.edge_pages)), svc.name


def test_strangers_in_add_on_namespaces_reach_nothing(stack_render: StackRender) -> None:
    """An unlabelled pod in any of the layer's namespaces reaches nothing (no Prometheus query API, no
    Elasticsearch, no internet); in the add-on namespaces it may resolve names (the services' chart grants DNS per
    service in theirs)."""
    policies, w = Policies(stack_render.rendered.objects), _addon_world(stack_render)
    targets = [("prometheus", 9090), ("grafana", 3000), ("internet", 443), ("nginx-control-plane", 8443)]
    if stack_render.layer.logging:
        targets += [("elasticsearch", 9200), ("kibana", 5601)]
    for name, src in w.items():
        if name.startswith("stranger-"):
            resolves = src.namespace not in (k.SERVICES_NS, k.DATA_NS)
            assert policies.can_connect(src, w["kube-dns"], 53, "UDP") is resolves, name
            for dst, port in targets:
                assert not policies.can_connect(src, w[dst], port), (name, dst)
