"""NetworkPolicies of every namespace the layer creates: a default-deny each, then the flows each add-on needs.

The services' own allow-lists come with their chart (charts/service/templates/networkpolicy.yaml) and the
in-cluster PostgreSQL's with ``objects.postgres``; this module covers the namespaces around them. Pod labels and
ports are the pinned upstreams' (each cited where it is used); ``tests/platform/k8s/test_network_policies.py``
evaluates the rendered policies: every wanted flow is open, Alertmanager and Logstash's GELF input are reachable
only from their one client, and strangers reach nothing.

Traffic from the node itself (``kubectl port-forward``, probes into pods outside the mesh) is not subject to these
policies; probes into enrolled pods arrive from the mesh's SNAT address (``kubelet_probes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shop_platform.k8s import objects
from shop_platform.k8s import spec as k
from shop_platform.k8s.spec import LayerSpec
from shop_platform.k8s.values import edge_backends

Manifest = dict[str, Any]
Peer = dict[str, Any]
Port = dict[str, Any]

# --- who is who (pod labels set by the pinned upstreams) ----------------------------------------------------
# prometheus-operator labels the Alertmanager pods it creates (kube-prometheus-stack 77.0.0
# templates/alertmanager/alertmanager.yaml selects them by this label for its anti-affinity).
ALERTMANAGER_POD_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "alertmanager"}
# grafana 9.3.4 templates/_helpers.tpl "grafana.selectorLabels" (name = the chart's name).
GRAFANA_POD_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "grafana"}
# kube-prometheus-stack 77.0.0 templates/prometheus-operator/_prometheus-operator.tpl.
PROMETHEUS_OPERATOR_POD_LABELS: Mapping[str, str] = {"app.kubernetes.io/component": "prometheus-operator"}
PROMETHEUS_OPERATOR_WEBHOOK_PORT = 10250  # values.yaml prometheusOperator.tls.internalPort
# fluent-bit 0.50.0 templates/_helpers.tpl "fluent-bit.selectorLabels".
FLUENT_BIT_POD_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "fluent-bit"}
# ECK 3.5.0: pkg/controller/elasticsearch/label/label.go, kibana/label/label.go, logstash/labels/labels.go.
ELASTICSEARCH_POD_LABELS: Mapping[str, str] = {
    "common.k8s.elastic.co/type": "elasticsearch",
    "elasticsearch.k8s.elastic.co/cluster-name": objects.ES_NAME,
}
KIBANA_POD_LABELS: Mapping[str, str] = {"common.k8s.elastic.co/type": "kibana"}
LOGSTASH_POD_LABELS: Mapping[str, str] = {"common.k8s.elastic.co/type": "logstash"}
ILM_JOB_POD_LABELS = objects.ILM_JOB_POD_LABELS
# eck-operator 3.5.0 templates/_helpers.tpl "eck-operator.selectorLabels" with values.yaml nameOverride.
ECK_OPERATOR_POD_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "elastic-operator"}
ECK_WEBHOOK_PORT = 9443  # eck-operator 3.5.0 values.yaml webhook.port
# NGINX Gateway Fabric 2.1.0's control plane serves the data plane's agent on 8443 (templates/service.yaml
# agent-grpc 443->8443).
NGF_CONTROL_PLANE_POD_LABELS = k.NGF_CONTROL_PLANE_POD_LABELS
NGF_AGENT_PORT = 8443
# Every data plane the provisioner creates carries the Gateway API's gateway-name label (objects.go).
_DATA_PLANE = {"key": "gateway.networking.k8s.io/gateway-name", "operator": "Exists"}
# istio/istio@1.30.3 manifests/charts/istio-control/istio-discovery/templates/deployment.yaml (pod label app: istiod;
# 15012 xDS and certificates over TLS, 15017 the webhooks behind the Service's 443) and
# manifests/charts/ztunnel/templates/daemonset.yaml (app: ztunnel). istio-cni runs on the host network: no
# NetworkPolicy applies to it.
ISTIOD_POD_LABELS: Mapping[str, str] = {"app": "istiod"}
ZTUNNEL_POD_LABELS: Mapping[str, str] = {"app": "ztunnel"}
ISTIOD_XDS_PORT = 15012
ISTIOD_WEBHOOK_PORT = 15017
ISTIOD_METRICS_PORT = 15014
ZTUNNEL_METRICS_PORT = 15020


def _labels(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"matchLabels": dict(labels)}


def _in_ns(namespace: str, labels: Mapping[str, str] | None = None) -> Peer:
    peer: Peer = {"namespaceSelector": _labels({"kubernetes.io/metadata.name": namespace})}
    if labels is not None:
        peer["podSelector"] = _labels(labels)
    return peer


def _same_ns(labels: Mapping[str, str]) -> Peer:
    return {"podSelector": _labels(labels)}


def _tcp(*ports: int) -> list[Port]:
    return [{"port": p, "protocol": "TCP"} for p in ports]


def _policy(
    name: str,
    namespace: str,
    pods: Mapping[str, Any],
    *,
    ingress: Sequence[dict[str, Any]] = (),
    egress: Sequence[dict[str, Any]] = (),
) -> Manifest:
    types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules]
    spec: dict[str, Any] = {"podSelector": dict(pods), "policyTypes": types}
    if ingress:
        spec["ingress"] = list(ingress)
    if egress:
        spec["egress"] = list(egress)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(objects.PART_OF)},
        "spec": spec,
    }


def _all_pods() -> dict[str, Any]:
    return {}


# --- the cluster's edges: API server, nodes, outside ---------------------------------------------------------


def api_server(layer: LayerSpec) -> dict[str, Any]:
    """An egress rule to the Kubernetes API. Policies see the endpoint behind the ``kubernetes`` Service: on EKS
    the control plane's ENIs in the cluster's VPC subnets on 443; on kind the control-plane node's address on
    6443, which lies in Docker's network, unknown to this program."""
    if layer.eks:
        assert layer.vpc_cidr is not None
        return {"to": [{"ipBlock": {"cidr": layer.vpc_cidr}}], "ports": _tcp(443)}
    return {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _tcp(6443)}


def _from_api_server(layer: LayerSpec, port: int) -> dict[str, Any]:
    """Admission webhooks: the API server calls into the pod (EKS: from the VPC; kind: from the node)."""
    cidr = layer.vpc_cidr if layer.eks else "0.0.0.0/0"
    return {"from": [{"ipBlock": {"cidr": cidr}}], "ports": _tcp(port)}


def _dns() -> dict[str, Any]:
    return {
        "to": [_in_ns("kube-system", k.DNS_POD_LABELS)],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
    }


def _base(namespace: str, layer: LayerSpec, *, api: Mapping[str, Any] | None = None) -> list[Manifest]:
    """Default-deny, DNS for every pod, and the API server for the pods ``api`` selects (none if None)."""
    out = [objects.default_deny(namespace), _policy("allow-dns", namespace, _all_pods(), egress=[_dns()])]
    if api is not None:
        out.append(_policy("allow-api-server", namespace, api, egress=[api_server(layer)]))
    return out


# --- per namespace -------------------------------------------------------------------------------------------


def monitoring(layer: LayerSpec) -> list[Manifest]:
    """Prometheus scrapes everything; only Prometheus reaches Alertmanager (whose API creates silences and takes
    no authentication) and only Grafana and Prometheus reach Prometheus."""
    ns = k.MONITORING_NS
    node_cidr = layer.vpc_cidr if layer.eks else "0.0.0.0/0"
    prometheus_egress = [
        {"to": [{"namespaceSelector": {}}]},  # every pod's metrics port, wherever its ServiceMonitor points
        # node-exporter (hostNetwork, 9100) and the kubelets (10250, cAdvisor) listen on node addresses.
        {"to": [{"ipBlock": {"cidr": node_cidr}}], "ports": _tcp(9100, 10250)},
    ]
    out = [
        # The operator, Grafana's sidecars, kube-state-metrics, Prometheus' service discovery and the chart's
        # admission-webhook Jobs all read the API.
        *_base(ns, layer, api=_all_pods()),
        _policy("prometheus", ns, _labels(k.PROMETHEUS_POD_LABELS), egress=prometheus_egress),
        _policy("from-prometheus", ns, _all_pods(), ingress=[{"from": [_same_ns(k.PROMETHEUS_POD_LABELS)]}]),
        _policy(
            "grafana",
            ns,
            _labels(GRAFANA_POD_LABELS),
            egress=[{"to": [_same_ns(k.PROMETHEUS_POD_LABELS)], "ports": _tcp(9090)}],
        ),
        _policy(
            "prometheus-from-grafana",
            ns,
            _labels(k.PROMETHEUS_POD_LABELS),
            ingress=[{"from": [_same_ns(GRAFANA_POD_LABELS)], "ports": _tcp(9090)}],
        ),
        _policy(
            "operator-webhook",
            ns,
            _labels(PROMETHEUS_OPERATOR_POD_LABELS),
            ingress=[_from_api_server(layer, PROMETHEUS_OPERATOR_WEBHOOK_PORT)],
        ),
    ]
    if layer.kubernetes.alert_webhook_url:
        # The receiver is an https webhook outside the cluster (config.KubernetesConfig refuses anything else).
        inside = [c for c in (layer.vpc_cidr, layer.pod_cidr) if c]
        out.append(
            _policy(
                "alertmanager-webhook",
                ns,
                _labels(ALERTMANAGER_POD_LABELS),
                egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": inside}}], "ports": _tcp(443)}],
            )
        )
    return out


def logging(layer: LayerSpec) -> list[Manifest]:
    """Elasticsearch answers Kibana, Logstash, the ILM Job and the ECK operator; Logstash's GELF input answers
    Fluent Bit only (anything else could forge log lines)."""
    ns = k.LOGGING_NS
    es, http, transport = _labels(ELASTICSEARCH_POD_LABELS), 9200, 9300
    to_es = {"to": [_same_ns(ELASTICSEARCH_POD_LABELS)], "ports": _tcp(http)}
    gelf = [{"port": k.GELF_PORT, "protocol": "TCP"}, {"port": k.GELF_PORT, "protocol": "UDP"}]
    return [
        *_base(ns, layer),
        _policy(
            "elasticsearch",
            ns,
            es,
            ingress=[
                {
                    "from": [
                        _same_ns(KIBANA_POD_LABELS),
                        _same_ns(LOGSTASH_POD_LABELS),
                        _same_ns(ILM_JOB_POD_LABELS),
                        _in_ns(k.ECK_NS, ECK_OPERATOR_POD_LABELS),
                    ],
                    "ports": _tcp(http),
                },
                {"from": [_same_ns(ELASTICSEARCH_POD_LABELS)], "ports": _tcp(transport)},
            ],
            egress=[{"to": [_same_ns(ELASTICSEARCH_POD_LABELS)], "ports": _tcp(transport)}],
        ),
        _policy("kibana", ns, _labels(KIBANA_POD_LABELS), egress=[to_es]),
        _policy(
            "logstash",
            ns,
            _labels(LOGSTASH_POD_LABELS),
            egress=[to_es],
            ingress=[{"from": [_in_ns(k.LOGGING_AGENT_NS, FLUENT_BIT_POD_LABELS)], "ports": gelf}],
        ),
    ]


def logging_agent(layer: LayerSpec) -> list[Manifest]:
    """Fluent Bit: the API (its kubernetes filter adds pod metadata) and Logstash's GELF input."""
    ns = k.LOGGING_AGENT_NS
    return [
        *_base(ns, layer, api=_all_pods()),
        _policy(
            "fluent-bit",
            ns,
            _labels(FLUENT_BIT_POD_LABELS),
            egress=[
                {
                    "to": [_in_ns(k.LOGGING_NS, LOGSTASH_POD_LABELS)],
                    "ports": [{"port": k.GELF_PORT, "protocol": "TCP"}, {"port": k.GELF_PORT, "protocol": "UDP"}],
                }
            ],
        ),
    ]


def eck_operator(layer: LayerSpec) -> list[Manifest]:
    """The ECK operator: the API, Elasticsearch's HTTP API (it manages users and settings), and the API server
    calling its validating webhook."""
    ns, operator = k.ECK_NS, _labels(ECK_OPERATOR_POD_LABELS)
    return [
        *_base(ns, layer, api=operator),
        _policy(
            "operator",
            ns,
            operator,
            ingress=[_from_api_server(layer, ECK_WEBHOOK_PORT)],
            egress=[{"to": [_in_ns(k.LOGGING_NS, ELASTICSEARCH_POD_LABELS)], "ports": _tcp(9200)}],
        ),
    ]


def gateway(layer: LayerSpec) -> list[Manifest]:
    """NGINX Gateway Fabric: the edge reaches the data plane on the listener port, the data plane reaches its
    backends (``values.edge_backends``: the gateway, the storefront) and its control plane's agent port; only the
    control plane (and the chart's certificate Job) reads the API."""
    ns = k.GATEWAY_NS
    data_plane = {"matchExpressions": [_DATA_PLANE]}
    not_data_plane = {"matchExpressions": [{**_DATA_PLANE, "operator": "DoesNotExist"}]}
    # EKS: the ALB (public subnets) sends to pod IPs; kind: kube-proxy forwards the NodePort from a node.
    edge = layer.vpc_cidr if layer.eks else "0.0.0.0/0"
    backends = [
        {"to": [_in_ns(k.SERVICES_NS, {"app.kubernetes.io/name": s.name})], "ports": _tcp(s.port)}
        for s in edge_backends()
    ]
    return [
        *_base(ns, layer, api=not_data_plane),
        _policy(
            "from-prometheus",
            ns,
            _all_pods(),
            ingress=[
                {
                    "from": [_in_ns(k.MONITORING_NS, k.PROMETHEUS_POD_LABELS)],
                    "ports": _tcp(objects.GATEWAY_METRICS_PORT),
                }
            ],
        ),
        _policy(
            "data-plane",
            ns,
            data_plane,
            ingress=[{"from": [{"ipBlock": {"cidr": edge}}], "ports": _tcp(k.GATEWAY_LISTENER_PORT)}],
            egress=[*backends, {"to": [_same_ns(NGF_CONTROL_PLANE_POD_LABELS)], "ports": _tcp(NGF_AGENT_PORT)}],
        ),
        _policy(
            "control-plane",
            ns,
            _labels(NGF_CONTROL_PLANE_POD_LABELS),
            ingress=[{"from": [{"podSelector": data_plane}], "ports": _tcp(NGF_AGENT_PORT)}],
        ),
    ]


def istio_system(layer: LayerSpec) -> list[Manifest]:
    """The mesh's control plane: ztunnel on every node fetches its configuration and the pods' certificates from
    istiod; the API server calls istiod's webhooks; Prometheus scrapes both (``mesh.pod_monitors``); only istiod
    reads the API."""
    ns = k.ISTIO_NS
    prometheus = [_in_ns(k.MONITORING_NS, k.PROMETHEUS_POD_LABELS)]
    return [
        *_base(ns, layer, api=_labels(ISTIOD_POD_LABELS)),
        _policy(
            "istiod",
            ns,
            _labels(ISTIOD_POD_LABELS),
            ingress=[
                {"from": [_same_ns(ZTUNNEL_POD_LABELS)], "ports": _tcp(ISTIOD_XDS_PORT)},
                _from_api_server(layer, ISTIOD_WEBHOOK_PORT),
                {"from": prometheus, "ports": _tcp(ISTIOD_METRICS_PORT)},
            ],
        ),
        _policy(
            "ztunnel",
            ns,
            _labels(ZTUNNEL_POD_LABELS),
            ingress=[{"from": prometheus, "ports": _tcp(ZTUNNEL_METRICS_PORT)}],
            egress=[{"to": [_same_ns(ISTIOD_POD_LABELS)], "ports": _tcp(ISTIOD_XDS_PORT)}],
        ),
    ]


def kubelet_probes(namespace: str) -> Manifest:
    """Enrolled pods see the kubelet's probes from the mesh's link-local SNAT address, not from the node. Only the
    node's own iptables rule produces that source (it is not routable), so every port is admitted from it."""
    return _policy(
        "allow-kubelet-probes",
        namespace,
        _all_pods(),
        ingress=[{"from": [{"ipBlock": {"cidr": k.MESH_PROBE_SOURCE_CIDR}}]}],
    )


def namespace_policies(layer: LayerSpec) -> list[Manifest]:
    """Every namespace the layer creates gets a default-deny; the add-on namespaces their flows as well; an
    enrolled namespace admits the kubelet's probes from the mesh's SNAT address and HBONE beside each pod-to-pod
    port (``objects.admit_hbone``)."""
    builders = {
        k.MONITORING_NS: monitoring,
        k.LOGGING_NS: logging,
        k.LOGGING_AGENT_NS: logging_agent,
        k.ECK_NS: eck_operator,
        k.GATEWAY_NS: gateway,
        k.ISTIO_NS: istio_system,
    }
    out: list[Manifest] = []
    for ns in objects.namespace_names(layer):
        out.extend(builders[ns](layer) if ns in builders else [objects.default_deny(ns)])
        if objects.mesh_enrolled(ns):
            out.append(kubelet_probes(ns))
    return [objects.admit_hbone(p) for p in out]
