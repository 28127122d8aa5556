"""What the Kubernetes layer needs to know about a stack: target, versions, sizing, where databases are.

``LayerSpec`` is plain data (no Pulumi outputs), built once per stack and handed to every builder.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shop_platform.config import KubernetesConfig

Target = Literal["eks", "kind"]

# Namespaces, by role. One place, so network policies, selectors and releases agree.
SERVICES_NS = "shop"
GATEWAY_NS = "nginx-gateway"
MONITORING_NS = "monitoring"
LOGGING_NS = "logging"
LOGGING_AGENT_NS = "logging-agent"
ECK_NS = "elastic-system"
DATA_NS = "data"
# Istio's control plane and node agents (istiod, istio-cni, ztunnel); also the mesh's root namespace, whose
# PeerAuthentication applies mesh-wide (meshConfig.rootNamespace defaults to it).
ISTIO_NS = "istio-system"

# The Gateway object NGINX Gateway Fabric serves; its data-plane pods carry the Gateway API's label.
GATEWAY_NAME = "shop"
GATEWAY_POD_LABELS: Mapping[str, str] = {"gateway.networking.k8s.io/gateway-name": GATEWAY_NAME}
# NGINX Gateway Fabric names the data-plane Service of a Gateway "<gateway>-nginx".
GATEWAY_DATA_PLANE_SERVICE = f"{GATEWAY_NAME}-nginx"
GATEWAY_LISTENER_PORT = 80
# kind: the NodePort the data plane listens on, mapped to the host's port 80 by charts/kind/cluster.yaml.
KIND_GATEWAY_NODE_PORT = 30080

# NGINX Gateway Fabric 2.1.0's control-plane pods (templates/_helpers.tpl "nginx-gateway.selectorLabels", name =
# the chart's name).
NGF_CONTROL_PLANE_POD_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "nginx-gateway-fabric"}
PROMETHEUS_POD_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "prometheus"}
DNS_POD_LABELS: Mapping[str, str] = {"k8s-app": "kube-dns"}
POSTGRES_POD_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "postgres"}
GRAFANA_PORT = 3002
# Grafana (kube-prometheus-stack's subchart) is named by the values (grafana.fullnameOverride), not by the
# release: the subchart ignores the parent's fullnameOverride (grafana 9.3.4 templates/_helpers.tpl
# "grafana.fullname"), so without it the Service and Secret would be "kube-prometheus-stack-grafana".
GRAFANA_NAME = "kps-grafana"
GELF_PORT = 12201
# The encrypted gp3 StorageClass every EKS PersistentVolumeClaim resolves to (the cluster's default class).
EKS_STORAGE_CLASS = "gp3-encrypted"
SECRETS_DIR = "/var/run/secrets/shop"
RDS_CA_BUNDLE = "/etc/ssl/rds/global-bundle.pem"  # baked into the image (services/Dockerfile)

# Istio ambient (shop_platform.k8s.mesh). Between enrolled pods every TCP connection travels as HBONE (mTLS over
# HTTP/2 CONNECT) to the destination pod's port 15008, and NetworkPolicies see that port, not the application's
# (istio.io docs ambient/usage/networkpolicy). The kubelet's HTTP/TCP probes into an enrolled pod are SNATed to a
# link-local address so ztunnel lets them through in plaintext (istio/istio@1.30.3 cni/README.md
# HOST_PROBE_SNAT_IP, cni/pkg/iptables/iptables.go); policies must admit that source instead of the node.
MESH_HBONE_PORT = 15008
MESH_PROBE_SOURCE_CIDR = "169.254.7.127/32"
MESH_DATAPLANE_LABEL = "istio.io/dataplane-mode"


@dataclass(frozen=True, slots=True)
class Sizing:
    """Container requests/limits and replica bounds override for a whole stack."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str
    # None: use the catalog's scaling; a number caps the catalog's bounds (laptop sizing).
    max_replicas_cap: int | None = None


DEFAULT_SIZING = Sizing("100m", "192Mi", "1", "384Mi")
# kind on a laptop: one replica each (catalog max capped at 2), small requests. What the whole local stack
# requests is summed by tests/platform/k8s/test_kind.py and stated in charts/README.md.
SMALL_SIZING = Sizing("25m", "128Mi", "500m", "256Mi", max_replicas_cap=2)


@dataclass(frozen=True, slots=True)
class LayerSpec:
    target: Target
    stack: str
    environment: Literal["dev", "prod"]  # the services' ENVIRONMENT setting
    kube_version: str  # the cluster's minor version, e.g. "1.33": manifests are validated against it
    # The stack's validated ``kubernetes`` section (shop_platform.config.KubernetesConfig), for this environment:
    # images, alert webhook, first administrator, log and metric retention, Elasticsearch size and quorum.
    kubernetes: KubernetesConfig
    image_repositories: Mapping[str, str] = field(default_factory=dict)  # kind: "shop/<name>"; EKS: ECR URLs
    sizing: Sizing = DEFAULT_SIZING
    # EKS: the VPC (pods have VPC addresses) and the databases' isolated subnets; kind: the pod subnet.
    vpc_cidr: str | None = None
    database_cidrs: tuple[str, ...] = ()
    pod_cidr: str | None = None
    region: str | None = None
    # The log pipeline (ECK, Fluent Bit). Only kind may run without it: the light laptop profile.
    logging: bool = True

    def __post_init__(self) -> None:
        if self.target == "eks":
            if not self.vpc_cidr or not self.database_cidrs or not self.region:
                raise ValueError("LayerSpec: EKS needs vpc_cidr, database_cidrs and region")
        elif not self.pod_cidr:
            raise ValueError("LayerSpec: kind needs pod_cidr (the cluster's pod subnet)")
        for cidr in (self.vpc_cidr, self.pod_cidr, *self.database_cidrs):
            if cidr is not None:
                ipaddress.IPv4Network(cidr, strict=True)
        if self.environment == "prod" and self.target != "eks":
            raise ValueError("LayerSpec: prod runs on EKS only")
        if self.eks and not self.logging:
            raise ValueError("LayerSpec: EKS stacks always run the log pipeline (only kind has a light profile)")

    @property
    def eks(self) -> bool:
        return self.target == "eks"

    @property
    def trusted_proxy_cidr(self) -> str:
        """Where NGINX Gateway pods' addresses come from: the gateway believes X-Forwarded-For only from there."""
        cidr = self.vpc_cidr if self.eks else self.pod_cidr
        assert cidr is not None  # checked in __post_init__
        return cidr
