"""Every pinned engine, add-on, chart and image version the platform uses, with the reason for each pin.

One place so an upgrade is one reviewed diff (and so Renovate can find them: each pin carries a
``# renovate:`` hint where a datasource exists). Other modules import names from here; nothing else in
the platform spells a version string.

Pins were last checked on ``PINS_CHECKED_ON`` without network access to AWS: before changing one, check it against
``aws eks describe-addon-versions --kubernetes-version <EKS_VERSION>`` and
``aws rds describe-db-engine-versions --engine postgres``; a wrong pin fails at ``pulumi up``, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

# --- EKS ------------------------------------------------------------------------------------------------
# Managed add-ons, pinned per EKS minor (kube-proxy must match the control plane's minor; the others are
# built per compatibility range). Pinned, not "latest": an add-on upgrade restarts node-level daemons and
# must be a reviewed change rolled through dev first. Sources, as last read on PINS_CHECKED_ON:
# - kube-proxy and CoreDNS: the EKS user guide's tables (managing-kube-proxy, managing-coredns), which list
#   v1.35.3-eksbuild.2 and v1.13.2-eksbuild.4 for 1.35;
# - vpc-cni, the Pod Identity agent and the EBS CSI driver for 1.35: builds a public EKS 1.35 Terraform
#   configuration runs (v1.21.1-eksbuild.3, v1.3.10-eksbuild.3, v1.57.1-eksbuild.1); these three are
#   built per compatibility range, not per minor.
# ``aws eks describe-addon-versions --kubernetes-version <minor> --addon-name <name>`` is the authority:
# platform/README.md ("verify on first deploy") runs it for every pin before the first up.
# renovate: datasource=custom.eks-addons
EKS_ADDON_VERSIONS: Final[dict[str, dict[str, str]]] = {
    # 1.33 stays only as the minor the kind stack validates manifests for (KIND_NODE_IMAGE); an EKS stack
    # naming it gets the plan's end-of-support warning (it left standard support on 2026-07-29).
    "1.33": {
        "vpc-cni": "v1.20.0-eksbuild.1",
        "kube-proxy": "v1.33.5-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.8-eksbuild.2",
        "coredns": "v1.12.4-eksbuild.1",
        # Needed for PersistentVolumes (Prometheus, Elasticsearch): EBS volumes created by Kubernetes.
        "aws-ebs-csi-driver": "v1.48.0-eksbuild.2",
    },
    # 1.34: kept so a cluster still on it can be upgraded to 1.35 one minor at a time (dev first).
    "1.34": {
        "vpc-cni": "v1.20.0-eksbuild.1",
        "kube-proxy": "v1.34.1-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.8-eksbuild.2",
        "coredns": "v1.12.4-eksbuild.1",
        "aws-ebs-csi-driver": "v1.48.0-eksbuild.2",
    },
    "1.35": {
        "vpc-cni": "v1.21.1-eksbuild.3",
        "kube-proxy": "v1.35.3-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.10-eksbuild.3",
        "coredns": "v1.13.2-eksbuild.4",
        "aws-ebs-csi-driver": "v1.57.1-eksbuild.1",
    },
}
# The cluster version is a stack config key (``cluster.version``) so dev can run one minor ahead of prod
# during an upgrade. Only minors with a pinned add-on set above may be named.
SUPPORTED_EKS_VERSIONS: Final[tuple[str, ...]] = tuple(sorted(EKS_ADDON_VERSIONS))
DEFAULT_EKS_VERSION: Final = "1.35"

# Version support policy: STANDARD, decided against EXTENDED. EXTENDED keeps an overstaying cluster on its
# minor at 6x the cluster-hour price (USD 0.60 instead of 0.10), silently, for up to 12 months. STANDARD
# costs nothing extra, but on the day standard support ends EKS upgrades the control plane by itself, and
# the program, still naming the old minor, then asks for a downgrade on every ``up`` (rejected). So the
# pinned minor must never reach that day: the plan warns SUPPORT_WARNING_DAYS before it, and
# tests/platform/test_versions.py fails once a pin is past it. If it happened anyway: set cluster.version to
# the minor EKS moved to (its add-on set must exist here) and run ``up`` (platform/README.md, runbook).
# The policy pack refuses EXTENDED (eks-supported-version) for the same reason.
EKS_SUPPORT_TYPE: Final = "STANDARD"


@dataclass(frozen=True, slots=True)
class SupportWindow:
    """When a pinned version leaves its vendor's standard support, and where that date comes from."""

    what: str
    end_of_standard_support: date
    source: str


# Standard support is 14 months from the minor's EKS release, extended support 12 more (EKS user guide,
# kubernetes-versions: "Amazon EKS Kubernetes release calendar").
_EKS_CALENDAR = "EKS user guide, Kubernetes release calendar"
EKS_SUPPORT: Final[dict[str, SupportWindow]] = {
    "1.33": SupportWindow("EKS 1.33", date(2026, 7, 29), _EKS_CALENDAR),
    "1.34": SupportWindow("EKS 1.34", date(2026, 12, 2), _EKS_CALENDAR),
    "1.35": SupportWindow("EKS 1.35", date(2027, 3, 27), _EKS_CALENDAR),
}
# The day the pins and the support table above were last checked against their sources.
PINS_CHECKED_ON: Final = date(2026, 12, 1)
# The plan warns this many days before a pinned version leaves standard support: time to roll the upgrade
# through dev and prod in normal maintenance windows.
SUPPORT_WARNING_DAYS: Final = 60

# Node AMI family: AL2023 (AL2 reached end of support for EKS 1.33+). Bottlerocket would harden further
# but changes node debugging (no shell, no package manager on the node).
NODE_AMI_TYPE: Final = "AL2023_ARM_64_STANDARD"

# --- RDS ------------------------------------------------------------------------------------------------
# PostgreSQL 17: the newest major in RDS standard support with a long runway (community EOL 2029-11).
# The MAJOR only: auto minor upgrades are on, so RDS moves the minor forward in the maintenance window (and
# forces it when a minor leaves support). The provider keeps a configured value that is a dot-prefix of the
# running version and plans a change otherwise: "17.6" against a running 17.7 is a downgrade that
# ``pulumi up`` fails on (pulumi_aws rds Instance docstring: "If auto_minor_version_upgrade is enabled, you
# can provide a prefix of the version such as 8.0"; terraform-provider-aws internal/service/rds
# compareActualEngineVersion). The parameter group family must match the major.
# renovate: datasource=custom.rds-postgres
POSTGRES_ENGINE_VERSION: Final = "17"
POSTGRES_PARAMETER_FAMILY: Final = "postgres17"
POSTGRES_SUPPORT: Final[dict[str, SupportWindow]] = {
    "17": SupportWindow(
        "RDS for PostgreSQL 17", date(2030, 2, 28), "RDS for PostgreSQL release calendar (major versions)"
    ),
}


def support_window(kind: Literal["eks", "postgres"], version: str) -> SupportWindow:
    """The dated support window of a pinned version; a pin without one is a programming error."""
    table = EKS_SUPPORT if kind == "eks" else POSTGRES_SUPPORT
    if version not in table:
        raise KeyError(f"{kind} {version} has no support window in shop_platform.versions: add its dates")
    return table[version]


def support_warnings(eks_version: str, today: date) -> list[str]:
    """One line per pinned version (the stack's EKS minor, the RDS major) past or within
    SUPPORT_WARNING_DAYS of the end of its standard support on ``today``."""
    out = []
    for window in (support_window("eks", eks_version), support_window("postgres", POSTGRES_ENGINE_VERSION)):
        days = (window.end_of_standard_support - today).days
        if days < 0:
            out.append(
                f"{window.what} left standard support on {window.end_of_standard_support} "
                f"({-days} days ago; {window.source}): upgrade now, extended support is billed"
            )
        elif days <= SUPPORT_WARNING_DAYS:
            out.append(
                f"{window.what} leaves standard support on {window.end_of_standard_support} "
                f"(in {days} days; {window.source}): plan the upgrade (dev first)"
            )
    return out


# --- Edge -----------------------------------------------------------------------------------------------
# ALB TLS policy: TLS 1.3 + TLS 1.2 with forward-secret AEAD ciphers only ("Res" = restricted). Clients that
# only speak TLS 1.0/1.1 are refused on purpose (PCI DSS, FSBP ELB.17).
ALB_SSL_POLICY: Final = "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
# CloudFront viewer policy for the maintenance site: the newest SNI-only TLS 1.2 policy.
CLOUDFRONT_MIN_PROTOCOL: Final = "TLSv1.2_2021"

# --- Kubernetes charts of the cluster's own controllers ---------------------------------------------------
# The AWS Load Balancer Controller registers NGINX Gateway pods in the ALB's target group via a
# TargetGroupBinding. Its IAM role is created by the cluster component; the Kubernetes layer installs the chart.
# renovate: datasource=helm depName=aws-load-balancer-controller registryUrl=https://aws.github.io/eks-charts
AWS_LOAD_BALANCER_CONTROLLER_CHART: Final = "1.14.1"
# renovate: datasource=helm depName=cluster-autoscaler registryUrl=https://kubernetes.github.io/autoscaler
CLUSTER_AUTOSCALER_CHART: Final = "9.50.1"

# ===== Kubernetes layer (shop_platform.k8s) =============================================================
# Chart pins for the add-ons the Kubernetes layer installs as Helm releases, the same on EKS and kind.
# Chosen offline (no chart repository reachable from the build machines): before bumping one, check
# ``helm show chart <repo>/<chart> --version <v>`` and the chart's values diff; a missing version fails
# at ``pulumi up`` (the release cannot be fetched), never silently.

# NGINX Gateway Fabric: the maintained NGINX on the Gateway API (the community ingress-nginx controller was
# retired in March 2026). 2.x provisions one NGINX data-plane Deployment per Gateway.
# renovate: datasource=docker depName=ghcr.io/nginx/charts/nginx-gateway-fabric
NGINX_GATEWAY_FABRIC_CHART: Final = "2.1.0"
NGINX_GATEWAY_FABRIC_REPO: Final = "oci://ghcr.io/nginx/charts"
# Gateway API CRDs (standard channel) at the version NGF 2.1 is conformant with; installed before NGF.
# renovate: datasource=github-releases depName=kubernetes-sigs/gateway-api
GATEWAY_API_VERSION: Final = "v1.3.0"

# kube-prometheus-stack: Prometheus Operator, Prometheus, Alertmanager, Grafana, kube-state-metrics,
# node-exporter in one release whose CRDs (ServiceMonitor, PrometheusRule) the services' chart uses.
# renovate: datasource=helm depName=kube-prometheus-stack registryUrl=https://prometheus-community.github.io/helm-charts
KUBE_PROMETHEUS_STACK_CHART: Final = "77.0.0"
KUBE_PROMETHEUS_STACK_REPO: Final = "https://prometheus-community.github.io/helm-charts"

# ECK (Elastic Cloud on Kubernetes) operator: manages Elasticsearch, Kibana and Logstash as custom resources with
# security (TLS + authentication) on by default. 3.5.0 (2026-07): supports Kubernetes 1.32-1.36 and stack 8.x/9.x
# (README.md@v3.5.0); from 3.4.0 its Kibana init container gets the hardened security context (elastic/cloud-on-k8s
# #8827) and Kibana's default memory is 2Gi. Its Logstash init container still gets only `privileged: false`, so
# k8s.objects names every operator-made init container with the restricted context (ECK_INIT_CONTAINERS, checked
# against the operator's source at this tag by tests/platform/k8s/test_eck_pods.py). Support window: the ECK row
# of Elastic's end-of-life table (elastic.co/support/eol), to check on every bump, with those source files.
# renovate: datasource=helm depName=eck-operator registryUrl=https://helm.elastic.co
ECK_OPERATOR_CHART: Final = "3.5.0"
ECK_OPERATOR_REPO: Final = "https://helm.elastic.co"
# One version for Elasticsearch, Kibana and Logstash (ECK requires them to match).
ELASTIC_STACK_VERSION: Final = "9.1.0"

# Fluent Bit DaemonSet (container logs -> GELF -> Logstash). Chart 0.50.0 ships Fluent Bit 4.0.3 (its appVersion):
# k8s.addons' filters are written against that version's GELF encoder, and tests/platform/k8s/test_log_pipeline.py
# replays them; a bump means re-reading src/flb_pack_gelf.c and the filters at the new appVersion.
# renovate: datasource=helm depName=fluent-bit registryUrl=https://fluent.github.io/helm-charts
FLUENT_BIT_CHART: Final = "0.50.0"
FLUENT_BIT_REPO: Final = "https://fluent.github.io/helm-charts"

# Repositories of the two charts pinned above for the EKS add-ons (AWS Load Balancer Controller binds the
# NGINX Gateway pods into the ALB's target group; Cluster Autoscaler resizes node groups).
AWS_LOAD_BALANCER_CONTROLLER_REPO: Final = "https://aws.github.io/eks-charts"
CLUSTER_AUTOSCALER_REPO: Final = "https://kubernetes.github.io/autoscaler"

# metrics-server: the resource-metrics API the services' HorizontalPodAutoscalers read (neither EKS nor kind
# installs it by default; kube-prometheus-stack does not serve metrics.k8s.io).
# renovate: datasource=helm depName=metrics-server registryUrl=https://kubernetes-sigs.github.io/metrics-server
METRICS_SERVER_CHART: Final = "3.13.0"
METRICS_SERVER_REPO: Final = "https://kubernetes-sigs.github.io/metrics-server"

# Istio, ambient mode: the service mesh of the cluster modes (mutual TLS between every pair of pods; the choice
# against Linkerd is argued in platform/README.md "Service mesh"). One version for its four charts (base, istiod,
# cni, ztunnel: they must match). 1.30.3 (2026-07-16) is the newest release whose source was read for these pins
# (istio/istio@1.30.3: manifests/charts/*/values.yaml, the ambient policy conversion, the CNI's probe SNAT); 1.30.4
# and 1.31 exist and a bump re-derives tests/platform/k8s/chart_keys. Support window: a minor is supported until
# six weeks after the N+2 minor's release (istio.io docs/releases/supported-releases), so 1.30 ends six weeks after
# 1.32.0, expected early 2027: move to 1.31 before then (dev first; ztunnel restarts drop the node's connections).
# renovate: datasource=helm depName=istiod registryUrl=https://istio-release.storage.googleapis.com/charts
ISTIO_CHART: Final = "1.30.3"
ISTIO_REPO: Final = "https://istio-release.storage.googleapis.com/charts"

# In-cluster PostgreSQL for the kind stack: the same major as RDS (POSTGRES_ENGINE_VERSION), so migrations
# see the same server locally and on AWS.
# renovate: datasource=docker depName=postgres
LOCAL_POSTGRES_IMAGE: Final = "postgres:17.6-bookworm"
# The kind node image matching the cluster version the local stack validates manifests for, by digest as kind's
# release notes ask: v1.33.4 is one of the images pre-built for kind v0.30.0, the oldest kind it is made for.
# renovate: datasource=docker depName=kindest/node
KIND_NODE_IMAGE: Final = "kindest/node:v1.33.4@sha256:25a6018e48dfcaee478f4a59af81157a437f15e6e140bf103f85a2e7cd0cbbf2"
KIND_MIN_VERSION: Final = "0.30.0"
# ===== end Kubernetes layer ===============================================================================
