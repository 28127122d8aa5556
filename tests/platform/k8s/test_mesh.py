"""The mesh over the offline plan: every workload namespace enrolled in Istio ambient, mutual TLS STRICT mesh-wide,
each plaintext port and each exempt namespace with its reason, and NetworkPolicies that admit what the mesh needs
(HBONE between the peers a policy already pairs, the kubelet's SNATed probes) and nothing more.

What only a running cluster shows (no plaintext on the wire, a plaintext client refused) is listed under "verify
on first deploy" in platform/README.md.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from shop_platform import versions
from shop_platform.k8s import mesh, netpol, objects
from shop_platform.k8s import spec as k
from shop_platform.k8s.values import ServiceInputs, allowed_callers, service_values

from services import catalog
from tools.render import render_service_chart

from .conftest import LIGHT, STACKS, StackRender, layer_for, render_stack
from .test_network_policies import ADDON_FLOWS, LOGGING_PODS, Endpoint, Policies, _addon_world, _world

HBONE = k.MESH_HBONE_PORT


def _of_kind(render: StackRender, kind: str) -> list[dict[str, Any]]:
    return [o for o in render.rendered.objects if o["kind"] == kind]


def test_every_namespace_holding_workloads_is_enrolled_and_every_exemption_says_why(stack_render: StackRender) -> None:
    """A namespace without the ambient label is outside the mesh: its pods talk plaintext and enrolled pods refuse
    them. Only the mesh's own namespace stays out, with its reason on the namespace (`kubectl describe ns`)."""
    namespaces = {o["metadata"]["name"]: o["metadata"] for o in _of_kind(stack_render, "Namespace")}
    exempt = set()
    for name, meta in namespaces.items():
        if meta["labels"].get(k.MESH_DATAPLANE_LABEL) == "ambient":
            assert "shop/mesh-exempt-reason" not in meta.get("annotations", {})
        else:
            assert k.MESH_DATAPLANE_LABEL not in meta["labels"], name
            assert len(meta["annotations"]["shop/mesh-exempt-reason"]) > 40, name
            exempt.add(name)
    assert exempt == {k.ISTIO_NS}
    workload_namespaces = {
        o["metadata"]["namespace"]
        for o in stack_render.rendered.objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job", "Elasticsearch", "Kibana", "Logstash")
    }
    workload_namespaces |= {r["namespace"] for r in stack_render.rendered.releases}
    workload_namespaces -= {"kube-system", k.ISTIO_NS}  # not the layer's; the mesh itself
    assert workload_namespaces <= set(namespaces) - exempt
    assert {k.SERVICES_NS, k.GATEWAY_NS} <= workload_namespaces


def test_the_enrolment_table_covers_every_namespace_the_layer_can_create() -> None:
    """A namespace added to the layer without an enrolment decision fails here, not silently outside the mesh."""
    assert set(objects.MESH_ENROLMENT) == set(objects.POD_SECURITY)
    for name, enrolment in objects.MESH_ENROLMENT.items():
        assert enrolment is True or (isinstance(enrolment, str) and enrolment.strip()), name


def test_mutual_tls_is_strict_mesh_wide_and_relaxed_only_on_named_ports(stack_render: StackRender) -> None:
    """One PeerAuthentication without a selector, in the root namespace, STRICT: it governs every enrolled pod. No
    policy turns a whole workload or namespace PERMISSIVE; the only plaintext is a port of PLAINTEXT_PORTS, each
    with its reason, on a workload selected by its labels."""
    policies = _of_kind(stack_render, "PeerAuthentication")
    root = [p for p in policies if "selector" not in p["spec"]]
    assert [(p["metadata"]["namespace"], p["spec"]) for p in root] == [(k.ISTIO_NS, {"mtls": {"mode": "STRICT"}})]
    relaxed = set()
    for p in policies:
        assert p["spec"]["mtls"]["mode"] == "STRICT", p["metadata"]["name"]
        for port, mode in p["spec"].get("portLevelMtls", {}).items():
            assert mode == {"mode": "PERMISSIVE"}
            assert p["metadata"]["annotations"]["shop/plaintext-reason"]
            relaxed.add((p["metadata"]["namespace"], int(port)))
    expected = {
        (ns, port)
        for ns, _, port, _ in mesh.PLAINTEXT_PORTS
        if ns in {o["metadata"]["name"] for o in _of_kind(stack_render, "Namespace")}
    }
    assert relaxed == expected
    assert (k.GATEWAY_NS, k.GATEWAY_LISTENER_PORT) in relaxed, "the edge hop enters the mesh at NGINX"


def _ip_ingress_ports(render: StackRender) -> set[tuple[str, int]]:
    """(namespace, port) of every ingress rule from an address block into an enrolled namespace, i.e. from
    something outside the mesh, the kubelet-probe rule excepted."""
    out = set()
    for p in _of_kind(render, "NetworkPolicy"):
        ns = p["metadata"]["namespace"]
        if not objects.mesh_enrolled(ns):
            continue
        for rule in p["spec"].get("ingress") or []:
            blocks = [peer["ipBlock"]["cidr"] for peer in rule.get("from") or [] if "ipBlock" in peer]
            if blocks and blocks != [k.MESH_PROBE_SOURCE_CIDR]:
                out |= {(ns, port["port"]) for port in rule.get("ports") or []}
    return out


def test_every_port_the_network_opens_to_outside_the_mesh_takes_plaintext_and_no_other(
    stack_render: StackRender,
) -> None:
    """Where a NetworkPolicy admits a caller from outside the cluster (the ALB, the API server's webhooks), STRICT
    mTLS would refuse it unless that port is PERMISSIVE; and a PERMISSIVE port nothing outside can reach would be
    plaintext for no caller. The two lists must be the same."""
    relaxed = {
        (p["metadata"]["namespace"], int(port))
        for p in _of_kind(stack_render, "PeerAuthentication")
        for port in p["spec"].get("portLevelMtls", {})
    }
    assert _ip_ingress_ports(stack_render) == relaxed


def test_the_plaintext_check_notices_an_edge_without_its_exception() -> None:
    """Guard: dropping the edge's PeerAuthentication leaves the ALB's port admitted by the network only."""
    render = render_stack("dev")
    relaxed = {
        (p["metadata"]["namespace"], int(port))
        for p in _of_kind(render, "PeerAuthentication")
        if p["metadata"]["namespace"] != k.GATEWAY_NS
        for port in p["spec"].get("portLevelMtls", {})
    }
    assert _ip_ingress_ports(render) - relaxed == {(k.GATEWAY_NS, k.GATEWAY_LISTENER_PORT)}


def test_hbone_is_open_exactly_between_the_services_that_may_talk(stack_render: StackRender) -> None:
    """Between enrolled pods the connection arrives on 15008: it must be open wherever the application port is
    (or the mesh breaks the flow) and closed wherever that port is closed (or HBONE becomes a way around the
    allow-lists). Strangers, in the namespace or not, reach no service on 15008."""
    policies, ep = Policies(stack_render.rendered.objects), _world(stack_render)
    callers = [ep[s.name] for s in catalog.SERVICES] + [ep["nginx-data-plane"], ep["prometheus"]]
    for dst in catalog.SERVICES:
        for src in callers:
            if src is ep[dst.name]:
                continue
            assert policies.can_connect(src, ep[dst.name], HBONE) is policies.can_connect(
                src, ep[dst.name], dst.port
            ), (src.name, dst.name)
        assert not policies.can_connect(ep["stranger-other-ns"], ep[dst.name], HBONE)
        assert not policies.can_connect(ep["stranger-same-ns"], ep[dst.name], HBONE)
    if not stack_render.layer.eks:
        for svc in catalog.SERVICES:
            assert policies.can_connect(ep[svc.name], ep["postgres"], HBONE) is svc.owns_database
        assert not policies.can_connect(ep["stranger-same-ns"], ep["postgres"], HBONE)


def test_hbone_is_not_opened_to_anything_outside_the_mesh(stack_render: StackRender) -> None:
    """RDS, AWS APIs, CoreDNS and the internet are not enrolled: traffic to them leaves ztunnel as it came, so their
    rules get no HBONE port."""
    policies, ep = Policies(stack_render.rendered.objects), _world(stack_render)
    for svc in catalog.SERVICES:
        for other in ("kube-dns", "internet", "aws-api", *(("rds",) if stack_render.layer.eks else ())):
            assert not policies.can_connect(ep[svc.name], ep[other], HBONE), (svc.name, other)


def test_every_add_on_flow_between_enrolled_pods_has_hbone(stack_render: StackRender) -> None:
    """Scraping, the edge, the log path: each TCP flow between two enrolled pods is open on 15008 too."""
    policies, w = Policies(stack_render.rendered.objects), _addon_world(stack_render)
    checked = 0
    for src, dst, _port, proto in ADDON_FLOWS:
        if proto != "TCP" or ({src, dst} & LOGGING_PODS and not stack_render.layer.logging):
            continue
        if all(
            w[x].namespace is not None and objects.MESH_ENROLMENT.get(w[x].namespace or "") is True for x in (src, dst)
        ):
            assert policies.can_connect(w[src], w[dst], HBONE), (src, dst)
            checked += 1
    assert checked >= 8


def test_the_kubelets_probes_reach_every_enrolled_pod_and_nothing_else_does_from_there(
    stack_render: StackRender,
) -> None:
    """Ambient SNATs the kubelet's probes to a link-local address; a default-deny without a rule for it would fail
    every HTTP probe and the pods would never be ready."""
    policies = Policies(stack_render.rendered.objects)
    probe = Endpoint("kubelet", None, ip=k.MESH_PROBE_SOURCE_CIDR.split("/")[0])
    pods = {**_world(stack_render), **_addon_world(stack_render)}
    for name, pod in pods.items():
        if pod.namespace is not None and objects.MESH_ENROLMENT.get(pod.namespace) is True:
            assert policies.can_connect(probe, pod, 8080), name
    neighbour = Endpoint("node-neighbour", None, ip="169.254.7.128")
    assert not policies.can_connect(neighbour, pods[catalog.GATEWAY], catalog.get(catalog.GATEWAY).port)


def test_the_mesh_control_plane_is_reachable_only_as_it_needs(stack_render: StackRender) -> None:
    """ztunnel fetches configuration and certificates from istiod on 15012; Prometheus scrapes both on their
    metrics ports; nothing in the workload namespaces reaches either."""
    policies = Policies(stack_render.rendered.objects)
    istiod = Endpoint("istiod", k.ISTIO_NS, dict(netpol.ISTIOD_POD_LABELS), "10.251.0.1")
    ztunnel = Endpoint("ztunnel", k.ISTIO_NS, dict(netpol.ZTUNNEL_POD_LABELS), "10.251.0.2")
    assert policies.can_connect(ztunnel, istiod, netpol.ISTIOD_XDS_PORT)
    gateway = _world(stack_render)[catalog.GATEWAY]
    for port in (netpol.ISTIOD_XDS_PORT, 15010, netpol.ISTIOD_WEBHOOK_PORT, netpol.ISTIOD_METRICS_PORT):
        assert not policies.can_connect(gateway, istiod, port)
    assert not policies.can_connect(gateway, ztunnel, netpol.ZTUNNEL_METRICS_PORT)
    prometheus = _world(stack_render)["prometheus"]
    assert policies.can_connect(prometheus, istiod, netpol.ISTIOD_METRICS_PORT)
    assert policies.can_connect(prometheus, ztunnel, netpol.ZTUNNEL_METRICS_PORT)
    assert not policies.can_connect(prometheus, istiod, netpol.ISTIOD_XDS_PORT)
    monitors = {
        o["metadata"]["name"] for o in _of_kind(stack_render, "PodMonitor") if o["metadata"]["namespace"] == k.ISTIO_NS
    }
    assert monitors == {"istiod", "ztunnel"}


def test_each_service_admits_by_identity_only_its_catalog_callers(stack_render: StackRender) -> None:
    """The network allow-list is repeated as identities: a caller that gets past a NetworkPolicy (a stolen pod IP,
    a policy the CNI fails to enforce) still has no certificate for an allowed service account. The NGINX data
    plane's identity is admitted exactly where its NetworkPolicies let it connect."""
    policies, ep = Policies(stack_render.rendered.objects), _world(stack_render)
    allow = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"]
        for p in _of_kind(stack_render, "AuthorizationPolicy")
    }
    for svc in catalog.SERVICES:
        spec = allow[(k.SERVICES_NS, svc.name)]
        assert spec["action"] == "ALLOW"
        assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": svc.name}}
        [rule] = spec["rules"]
        principals = set(rule["from"][0]["source"]["principals"])
        expected = {f"cluster.local/ns/{k.SERVICES_NS}/sa/{c}" for c in allowed_callers(svc)}
        expected.add(f"cluster.local/ns/{k.MONITORING_NS}/sa/kps-prometheus")
        if policies.can_connect(ep["nginx-data-plane"], ep[svc.name], svc.port):
            expected.add(f"cluster.local/ns/{k.GATEWAY_NS}/sa/{k.GATEWAY_DATA_PLANE_SERVICE}")
        assert principals == expected, svc.name
        assert rule["to"] == [{"operation": {"ports": [str(svc.port)]}}]
    postgres = allow.get((k.DATA_NS, "postgres"))
    if stack_render.layer.eks:
        assert postgres is None
    else:
        assert postgres is not None
        assert set(postgres["rules"][0]["from"][0]["source"]["principals"]) == {
            f"cluster.local/ns/{k.SERVICES_NS}/sa/{s.name}" for s in catalog.database_services()
        }


@pytest.mark.parametrize("stack", STACKS)
def test_istio_is_installed_in_order_at_one_pinned_version_in_ambient_mode(stack: str) -> None:
    releases = [r for r in render_stack(stack).rendered.releases if r["namespace"] == k.ISTIO_NS]
    assert [(r["name"], r["chart"]) for r in releases] == [
        ("istio-base", "base"),
        ("istiod", "istiod"),
        ("istio-cni", "cni"),
        ("ztunnel", "ztunnel"),
    ]
    assert {r["version"] for r in releases} == {versions.ISTIO_CHART}
    assert all(r["values"].get("profile") == "ambient" for r in releases[1:])


def test_admit_hbone_touches_only_rules_between_enrolled_pods() -> None:
    """The helper every policy goes through: pod-to-pod TCP gets 15008; address blocks, CoreDNS, UDP-only rules
    and policies of namespaces outside the mesh stay as written."""

    def policy(ns: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {"metadata": {"namespace": ns}, "spec": {"podSelector": {}, "egress": rules}}

    tcp = [{"port": 9200, "protocol": "TCP"}]
    same_ns = {"to": [{"podSelector": {}}], "ports": tcp}
    dns = {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
        "ports": [{"port": 53, "protocol": "TCP"}],
    }
    block = {"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": tcp}
    udp = {"to": [{"podSelector": {}}], "ports": [{"port": 12201, "protocol": "UDP"}]}
    out = objects.admit_hbone(policy(k.LOGGING_NS, [same_ns, dns, block, udp]))["spec"]["egress"]
    assert out == [{**same_ns, "ports": [*tcp, {"port": HBONE, "protocol": "TCP"}]}, dns, block, udp]
    untouched = policy(k.ISTIO_NS, [same_ns])
    assert objects.admit_hbone(copy.deepcopy(untouched)) == untouched


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_database_bootstrap_namespace_states_why_it_is_outside_the_mesh(stack: str) -> None:
    """EKS also creates `shop-db-bootstrap` (its Jobs create the services' database roles): it is not enrolled, and
    says why on the namespace itself."""
    ns = render_stack(stack).recording.one("kubernetes:core/v1:Namespace")
    meta = ns.inputs["metadata"]
    assert k.MESH_DATAPLANE_LABEL not in meta["labels"]
    assert "outside the mesh" in meta["annotations"]["shop/mesh-exempt-reason"]


def test_the_chart_adds_hbone_only_when_told_and_only_beside_pod_peers() -> None:
    """The chart's default (0) is no mesh: its policies are exactly the allow-lists. With the port set, every rule
    naming pods gets it; the EKS database rule (RDS subnets) and the AWS API rule do not."""
    svc = catalog.get("orders")
    for stack in ("dev", "local"):
        values = service_values(
            svc,
            layer_for(stack),
            ServiceInputs(
                image_repository="shop/orders",
                role_arn=("arn:aws:iam::123456789012:role/x" if stack == "dev" else ""),
                db_host="db",
                db_user="orders_app",
            ),
        )
        for hbone in (0, HBONE):
            values["networkPolicy"]["hbonePort"] = hbone
            rules = [
                (direction, rule)
                for o in render_service_chart(values, svc.name, k.SERVICES_NS)
                if o["kind"] == "NetworkPolicy"
                for direction in ("ingress", "egress")
                for rule in o["spec"].get(direction, [])
            ]
            for direction, rule in rules:
                peers = rule.get("from" if direction == "ingress" else "to", [])
                pods = all("podSelector" in peer for peer in peers)
                dns = any(
                    peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                    == "kube-system"
                    for peer in peers
                )
                has_hbone = {"port": HBONE, "protocol": "TCP"} in rule["ports"]
                assert has_hbone is (bool(hbone) and pods and not dns), (stack, hbone, rule)


def test_the_light_profile_keeps_the_mesh_and_drops_only_the_log_pipelines_exception() -> None:
    """kind's light profile has no ECK: its webhook exception goes with it, everything else stays as in full."""
    light, full = render_stack(LIGHT), render_stack("local")
    test_mutual_tls_is_strict_mesh_wide_and_relaxed_only_on_named_ports(light)
    test_every_port_the_network_opens_to_outside_the_mesh_takes_plaintext_and_no_other(light)

    def relaxed(render: StackRender) -> set[str]:
        return {p["metadata"]["namespace"] for p in _of_kind(render, "PeerAuthentication") if "selector" in p["spec"]}

    assert relaxed(full) - relaxed(light) == {k.ECK_NS}
    assert [r["name"] for r in light.rendered.releases if r["namespace"] == k.ISTIO_NS] == [
        "istio-base",
        "istiod",
        "istio-cni",
        "ztunnel",
    ]
