"""The service mesh of the cluster modes: Istio in ambient mode, mutual TLS between every pair of pods.

Istio's four charts (base CRDs, istiod, the istio-cni node agent, the ztunnel node proxy) are installed with the
``ambient`` profile. A namespace labelled ``istio.io/dataplane-mode=ambient`` (``objects.MESH_ENROLMENT``) has its
pods' traffic redirected through the ztunnel of their node, which carries it as HBONE: mutual TLS with each pod's
service-account SPIFFE identity (``spiffe://cluster.local/ns/<namespace>/sa/<account>``), certificates issued and
rotated by istiod. The security resources built here:

- a mesh-wide STRICT ``PeerAuthentication`` in the root namespace: an enrolled pod refuses plaintext;
- three workload exceptions, each a port that only something outside the mesh ever calls (the edge's listener,
  two admission webhooks called by the API server), PERMISSIVE on that port only;
- L4 ``AuthorizationPolicy`` objects for the services and kind's PostgreSQL: a connection is admitted only from the
  identities the catalog allows (``values.allowed_callers``), the edge and Prometheus, whatever the network says.

Ambient's L4 features need no waypoint proxy; none is deployed. The choice of Istio ambient over Linkerd, the
NetworkPolicy consequences and what only a cluster can prove are in platform/README.md ("Service mesh").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services import catalog
from shop_platform import versions
from shop_platform.k8s import netpol, objects
from shop_platform.k8s import spec as k
from shop_platform.k8s.addons import ReleaseSpec
from shop_platform.k8s.spec import LayerSpec
from shop_platform.k8s.values import allowed_callers, edge_backends

Manifest = dict[str, Any]

# The identity every workload of the mesh is named by (meshConfig.trustDomain, Istio's default).
TRUST_DOMAIN = "cluster.local"


def _resources(cpu: str, memory: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}}


# Memory requests on kind (the laptop budget, charts/README.md) and on EKS: istiod watches a few hundred objects
# here, ztunnel holds one certificate per local service account; the charts' defaults (istiod 500m/2048Mi,
# ztunnel 200m/512Mi, istio-cni 100m/100Mi at 1.30.3) are sized for clusters of thousands of pods.
ISTIOD_RESOURCES: Mapping[bool, dict[str, Any]] = {True: _resources("200m", "512Mi"), False: _resources("50m", "96Mi")}
ZTUNNEL_RESOURCES: Mapping[bool, dict[str, Any]] = {True: _resources("50m", "128Mi"), False: _resources("10m", "16Mi")}
CNI_RESOURCES: Mapping[bool, dict[str, Any]] = {True: _resources("50m", "64Mi"), False: _resources("10m", "32Mi")}


def _release(name: str, chart: str, values: dict[str, Any]) -> ReleaseSpec:
    return ReleaseSpec(name, chart, versions.ISTIO_CHART, versions.ISTIO_REPO, k.ISTIO_NS, values)


def istio_releases(layer: LayerSpec) -> list[ReleaseSpec]:
    """base (CRDs), istiod, istio-cni, ztunnel: the order Istio's Helm install guide for ambient uses. Keys: the
    charts' values.yaml at versions.ISTIO_CHART (tests/platform/k8s/chart_keys); ``profile`` is read by each chart's
    templates/zzz_profile.yaml, which merges files/profile-ambient.yaml (PILOT_ENABLE_AMBIENT on istiod,
    ambient.enabled on istio-cni)."""
    eks = layer.eks
    # EKS: two istiod replicas at least (the chart's HPA scales on); a restart must not stop certificate issuance.
    scaling: dict[str, Any] = {"autoscaleMin": 2} if eks else {"autoscaleEnabled": False, "replicaCount": 1}
    return [
        _release("istio-base", "base", {}),
        _release("istiod", "istiod", {"profile": "ambient", **scaling, "resources": ISTIOD_RESOURCES[eks]}),
        _release("istio-cni", "cni", {"profile": "ambient", "resources": CNI_RESOURCES[eks]}),
        # The release must be named "ztunnel": istiod trusts the ztunnel service account of that name in its own
        # namespace to request certificates for other identities (istiod values.yaml trustedZtunnelName).
        _release("ztunnel", "ztunnel", {"profile": "ambient", "resources": ZTUNNEL_RESOURCES[eks]}),
    ]


# Ports where an enrolled workload is called by something outside the mesh, so plaintext stays admitted there
# (and only there): (namespace, pod labels, port, who calls).
PLAINTEXT_PORTS: tuple[tuple[str, Mapping[str, str], int, str], ...] = (
    (
        k.GATEWAY_NS,
        k.GATEWAY_POD_LABELS,
        k.GATEWAY_LISTENER_PORT,
        "the edge: the ALB (EKS) or kind's NodePort; TLS ends at the ALB, HBONE starts at NGINX's ztunnel",
    ),
    (
        k.MONITORING_NS,
        netpol.PROMETHEUS_OPERATOR_POD_LABELS,
        netpol.PROMETHEUS_OPERATOR_WEBHOOK_PORT,
        "the API server calls the Prometheus Operator's admission webhook (HTTPS)",
    ),
    (
        k.ECK_NS,
        netpol.ECK_OPERATOR_POD_LABELS,
        netpol.ECK_WEBHOOK_PORT,
        "the API server calls the ECK operator's validating webhook (HTTPS)",
    ),
)


def _meta(name: str, namespace: str, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(objects.PART_OF)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def peer_authentications(layer: LayerSpec) -> list[Manifest]:
    """STRICT for the whole mesh (root namespace, no selector), and a workload policy per PLAINTEXT_PORTS entry:
    STRICT with that one port PERMISSIVE. Ambient honours port-level modes of workload policies only, turning
    them into ztunnel rules (istio/istio@1.30.3 pilot/pkg/serviceregistry/ambient/authorization.go
    convertPeerAuthentication)."""
    out = [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": _meta("default", k.ISTIO_NS),
            "spec": {"mtls": {"mode": "STRICT"}},
        }
    ]
    present = set(objects.namespace_names(layer))
    for namespace, labels, port, why in PLAINTEXT_PORTS:
        if namespace not in present:
            continue
        out.append(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "PeerAuthentication",
                "metadata": _meta(f"plaintext-{port}", namespace, {"shop/plaintext-reason": why}),
                "spec": {
                    "selector": {"matchLabels": dict(labels)},
                    "mtls": {"mode": "STRICT"},
                    "portLevelMtls": {str(port): {"mode": "PERMISSIVE"}},
                },
            }
        )
    return out


def principal(namespace: str, service_account: str) -> str:
    return f"{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


# Service accounts of the callers from outside the services' namespace: the NGINX data plane (NGINX Gateway Fabric
# 2.1.0 names it after the Gateway's resource name, internal/controller/provisioner/objects.go) and Prometheus
# (kube-prometheus-stack 77.0.0 _helpers.tpl "prometheus.serviceAccountName": <fullnameOverride>-prometheus).
EDGE_PRINCIPAL = principal(k.GATEWAY_NS, k.GATEWAY_DATA_PLANE_SERVICE)
PROMETHEUS_PRINCIPAL = principal(k.MONITORING_NS, "kps-prometheus")


def _allow(name: str, namespace: str, labels: Mapping[str, str], port: int, principals: list[str]) -> Manifest:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": _meta(name, namespace),
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"principals": sorted(principals)}}],
                    "to": [{"operation": {"ports": [str(port)]}}],
                }
            ],
        },
    }


def authorization_policies(layer: LayerSpec) -> list[Manifest]:
    """Who may open a connection to whom, by identity: each service admits the services the catalog lets call it
    (the same list its NetworkPolicy admits), Prometheus on its port, and each edge backend
    (``values.edge_backends``) the NGINX data plane; kind's PostgreSQL admits the services that own a database.
    An ALLOW policy denies every other identity and any plaintext caller (no identity) at the destination's
    ztunnel. Principals and ports are layer-4 fields ztunnel enforces itself (handleRule, istio/istio@1.30.3
    pilot/pkg/serviceregistry/ambient/authorization.go); an HTTP field would need a waypoint. The services' chart
    names each service account after its service (charts/service/templates/serviceaccount.yaml)."""
    out = []
    for svc in catalog.SERVICES:
        callers = [principal(k.SERVICES_NS, c) for c in allowed_callers(svc)] + [PROMETHEUS_PRINCIPAL]
        if svc in edge_backends():
            callers.append(EDGE_PRINCIPAL)
        out.append(_allow(svc.name, k.SERVICES_NS, {"app.kubernetes.io/name": svc.name}, svc.port, callers))
    if not layer.eks:
        out.append(
            _allow(
                "postgres",
                k.DATA_NS,
                k.POSTGRES_POD_LABELS,
                5432,
                [principal(k.SERVICES_NS, s.name) for s in catalog.database_services()],
            )
        )
    return out


def pod_monitors() -> list[Manifest]:
    """The mesh observed: istiod's control-plane metrics (xDS pushes, certificate signing) and each ztunnel's
    connection and policy counters, by their named container ports (istio/istio@1.30.3 istio-discovery
    templates/deployment.yaml http-monitoring 15014, ztunnel templates/daemonset.yaml ztunnel-stats 15020)."""
    return [
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": _meta(name, k.ISTIO_NS),
            "spec": {
                "selector": {"matchLabels": dict(labels)},
                "podMetricsEndpoints": [{"port": port, "path": "/metrics", "interval": "30s"}],
            },
        }
        for name, labels, port in (
            ("istiod", netpol.ISTIOD_POD_LABELS, "http-monitoring"),
            ("ztunnel", netpol.ZTUNNEL_POD_LABELS, "ztunnel-stats"),
        )
    ]
