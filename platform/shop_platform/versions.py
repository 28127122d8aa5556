"""Every pinned engine, add-on, chart and image version the platform uses, with the reason for each pin.

One place so an upgrade is one reviewed diff (and so Renovate can find them: each pin carries a
``# renovate:`` hint where a datasource exists). Other modules import names from here; nothing else in
the platform spells a version string.

Pins were chosen on 2026-11-24 without network access to AWS: before changing one, check it against
``aws eks describe-addon-versions --kubernetes-version <EKS_VERSION>`` and
``aws rds describe-db-engine-versions --engine postgres``; a wrong pin fails at ``pulumi up``, never silently.
"""

from __future__ import annotations

from typing import Final

# --- EKS ------------------------------------------------------------------------------------------------
# Managed add-ons, pinned per EKS minor (kube-proxy must match the control plane's minor; the others are
# built per compatibility range). Pinned, not "latest": an add-on upgrade restarts node-level daemons and
# must be a reviewed change rolled through dev first. kube-proxy and CoreDNS are the latest builds in the
# EKS user guide's version tables (managing-kube-proxy, managing-coredns) as last read; vpc-cni, the Pod
# Identity agent and the EBS CSI driver could not be checked offline: confirm them with
# ``aws eks describe-addon-versions --kubernetes-version <minor> --addon-name <name>`` before the first up.
# renovate: datasource=custom.eks-addons
EKS_ADDON_VERSIONS: Final[dict[str, dict[str, str]]] = {
    "1.33": {
        "vpc-cni": "v1.20.0-eksbuild.1",
        "kube-proxy": "v1.33.5-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.8-eksbuild.2",
        "coredns": "v1.12.4-eksbuild.1",
        # Needed for PersistentVolumes (Prometheus, Elasticsearch): EBS volumes created by Kubernetes.
        "aws-ebs-csi-driver": "v1.48.0-eksbuild.2",
    },
    "1.34": {
        "vpc-cni": "v1.20.0-eksbuild.1",
        "kube-proxy": "v1.34.1-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.8-eksbuild.2",
        "coredns": "v1.12.4-eksbuild.1",
        "aws-ebs-csi-driver": "v1.48.0-eksbuild.2",
    },
}
# The cluster version is a stack config key (``cluster.version``) so dev can run one minor ahead of prod
# during an upgrade. Only minors with a pinned add-on set above may be named. Standard support (FSBP EKS.2;
# extended support costs 6x per cluster-hour) lasts about 14 months from a minor's EKS release, so by late
# 2026 1.33 has left it and 1.34 is close to leaving: the default is 1.34, and adding the 1.35 set (from
# describe-addon-versions, which could not be reached from here) is the next upgrade.
SUPPORTED_EKS_VERSIONS: Final[tuple[str, ...]] = tuple(sorted(EKS_ADDON_VERSIONS))
DEFAULT_EKS_VERSION: Final = "1.34"

# Node AMI family: AL2023 (AL2 reached end of support for EKS 1.33+). Bottlerocket would harden further
# but changes node debugging; revisit with the observability issue.
NODE_AMI_TYPE: Final = "AL2023_ARM_64_STANDARD"

# --- RDS ------------------------------------------------------------------------------------------------
# PostgreSQL 17: the newest major in RDS standard support with a long runway (community EOL 2029-11).
# The minor is pinned (auto minor upgrades stay on, so RDS moves it forward in the maintenance window;
# ``engine_version`` is the floor). The family must match the major (parameter group).
# renovate: datasource=custom.rds-postgres
POSTGRES_ENGINE_VERSION: Final = "17.6"
POSTGRES_PARAMETER_FAMILY: Final = "postgres17"

# --- Edge -----------------------------------------------------------------------------------------------
# ALB TLS policy: TLS 1.3 + TLS 1.2 with forward-secret AEAD ciphers only ("Res" = restricted). Clients that
# only speak TLS 1.0/1.1 are refused on purpose (PCI DSS, FSBP ELB.17).
ALB_SSL_POLICY: Final = "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
# CloudFront viewer policy for the maintenance site: the newest SNI-only TLS 1.2 policy.
CLOUDFRONT_MIN_PROTOCOL: Final = "TLSv1.2_2021"

# --- Kubernetes charts (later issues add theirs here) ---------------------------------------------------
# The AWS Load Balancer Controller registers NGINX Gateway pods in the ALB's target group via a
# TargetGroupBinding. Its IAM role is created by the cluster component; the chart is installed later.
# renovate: datasource=helm depName=aws-load-balancer-controller registryUrl=https://aws.github.io/eks-charts
AWS_LOAD_BALANCER_CONTROLLER_CHART: Final = "1.14.1"
# renovate: datasource=helm depName=cluster-autoscaler registryUrl=https://kubernetes.github.io/autoscaler
CLUSTER_AUTOSCALER_CHART: Final = "9.50.1"

# ===== Kubernetes layer (shop_platform.k8s) - issue 6 ====================================================
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

# In-cluster PostgreSQL for the kind stack: the same major/minor as RDS (POSTGRES_ENGINE_VERSION), so
# migrations see the same server locally and on AWS.
# renovate: datasource=docker depName=postgres
LOCAL_POSTGRES_IMAGE: Final = "postgres:17.6-bookworm"
# The kind node image matching the cluster version the local stack validates manifests for.
# renovate: datasource=docker depName=kindest/node
KIND_NODE_IMAGE: Final = "kindest/node:v1.33.4"
# ===== end Kubernetes layer ===============================================================================
