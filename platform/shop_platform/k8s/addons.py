"""Third-party Helm releases: chart, version and repository from ``versions``, values computed here.

Their objects cannot be rendered offline (the charts are remote); the offline plan lists each release with
its chart, version and these values, and the tests check the values that carry our decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shop_platform import versions
from shop_platform.k8s import spec as k
from shop_platform.k8s.spec import LayerSpec

RESTRICTED_CONTAINER: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True, slots=True)
class ReleaseSpec:
    name: str
    chart: str
    version: str
    repo: str
    namespace: str
    values: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "chart": self.chart,
            "version": self.version,
            "repo": self.repo,
            "namespace": self.namespace,
            "values": self.values,
        }


def _requests(cpu: str, memory: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}}


def nginx_gateway_fabric(layer: LayerSpec) -> ReleaseSpec:
    """Keys: nginx/nginx-gateway-fabric@v2.1.0 charts/nginx-gateway-fabric/values.yaml (tests/platform/k8s/
    chart_keys). The control plane's container context is fixed by the chart (restricted) and has no value."""
    service: dict[str, Any] = {"type": "ClusterIP"}
    if not layer.eks:
        # kind: the data plane listens on a fixed NodePort that charts/kind/cluster.yaml maps to host :80 on the
        # control-plane node, where NGINX never runs (kind taints it once workers exist). The chart's default
        # externalTrafficPolicy Local (values.yaml nginx.service) would drop that traffic: no local endpoint.
        service = {
            "type": "NodePort",
            "externalTrafficPolicy": "Cluster",
            "nodePorts": [{"port": k.KIND_GATEWAY_NODE_PORT, "listenerPort": k.GATEWAY_LISTENER_PORT}],
        }
    values = {
        "nginxGateway": {
            "gatewayClassName": "nginx",
            "replicas": 2 if layer.eks else 1,
            # Usage telemetry to F5 is on by default; the namespace's egress allows no internet.
            "productTelemetry": {"enable": False},
            "resources": _requests("100m" if layer.eks else "20m", "128Mi" if layer.eks else "64Mi"),
        },
        "nginx": {
            "replicas": 3 if layer.environment == "prod" else (2 if layer.eks else 1),
            "service": service,
            "container": {"resources": _requests("100m" if layer.eks else "20m", "128Mi" if layer.eks else "64Mi")},
        },
    }
    return ReleaseSpec(
        "nginx-gateway-fabric",
        "nginx-gateway-fabric",
        versions.NGINX_GATEWAY_FABRIC_CHART,
        versions.NGINX_GATEWAY_FABRIC_REPO,
        k.GATEWAY_NS,
        values,
    )


def gateway_api_crds_url() -> str:
    return (
        "https://github.com/kubernetes-sigs/gateway-api/releases/download/"
        f"{versions.GATEWAY_API_VERSION}/standard-install.yaml"
    )


def alertmanager_config(layer: LayerSpec) -> dict[str, Any]:
    receiver: dict[str, Any] = {"name": "platform"}
    if layer.kubernetes.alert_webhook_url:
        receiver["webhook_configs"] = [{"url": layer.kubernetes.alert_webhook_url, "send_resolved": True}]
    return {
        "route": {
            "receiver": "platform",
            "group_by": ["alertname", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [{"receiver": "null", "matchers": ['alertname = "Watchdog"']}],
        },
        "receivers": [receiver, {"name": "null"}],
        "inhibit_rules": [
            {
                "source_matchers": ['severity = "critical"'],
                "target_matchers": ['severity = "warning"'],
                "equal": ["alertname", "service"],
            }
        ],
    }


# Control-plane components whose metrics neither target exposes: EKS manages etcd, the scheduler and the
# controller manager out of reach; kind (kubeadm) binds them and kube-proxy's metrics to 127.0.0.1. Scraping
# them only yields permanent TargetDown/...Down alerts, and kube-prometheus-stack 77.0.0 gates their alert rules
# on the same `enabled` flags (templates/prometheus/rules-1.14/etcd.yaml, kubernetes-system-scheduler.yaml, ...).
UNSCRAPABLE_TARGETS = ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy")


def kube_prometheus_stack(layer: LayerSpec) -> ReleaseSpec:
    """Keys: prometheus-community/helm-charts@kube-prometheus-stack-77.0.0 charts/kube-prometheus-stack/values.yaml
    plus its subcharts grafana 9.3.4, kube-state-metrics 6.1.4, prometheus-node-exporter 4.47.3."""
    storage: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{layer.kubernetes.prometheus_storage_gib}Gi"}},
    }
    if layer.eks:
        storage["storageClassName"] = k.EKS_STORAGE_CLASS
    small = not layer.eks
    values: dict[str, Any] = {
        "fullnameOverride": "kps",
        **{target: {"enabled": False} for target in UNSCRAPABLE_TARGETS},
        "prometheusOperator": {"resources": _requests("10m" if small else "50m", "64Mi" if small else "128Mi")},
        "prometheus": {
            "prometheusSpec": {
                # Pick up every ServiceMonitor/PrometheusRule (the services' chart labels them its own way).
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "retention": f"{layer.kubernetes.prometheus_retention_days}d",
                "resources": {
                    "requests": {"cpu": "200m" if layer.eks else "50m", "memory": "1Gi" if layer.eks else "512Mi"}
                },
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "fsGroup": 2000,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "storageSpec": {"volumeClaimTemplate": {"spec": storage}},
            }
        },
        "alertmanager": {
            "config": alertmanager_config(layer),
            "alertmanagerSpec": {"resources": _requests("10m" if small else "50m", "64Mi")},
        },
        "kube-state-metrics": {"resources": _requests("10m" if small else "50m", "64Mi" if small else "128Mi")},
        "prometheus-node-exporter": {"resources": _requests("10m" if small else "50m", "32Mi")},
        "grafana": {
            # The subchart names itself from the release unless told (see spec.GRAFANA_NAME).
            "fullnameOverride": k.GRAFANA_NAME,
            "resources": _requests("20m" if small else "100m", "128Mi" if small else "256Mi"),
            "service": {"port": k.GRAFANA_PORT},
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": "grafana_dashboard",
                    "labelValue": "1",
                    "searchNamespace": k.MONITORING_NS,
                },
                # No Alertmanager datasource: only Prometheus may reach Alertmanager's (writable) API.
                "datasources": {"alertmanager": {"enabled": False}},
            },
            "defaultDashboardsTimezone": "utc",
            # The admin password is generated by the chart into a Secret (never in values or state).
            "adminPassword": None,
        },
    }
    return ReleaseSpec(
        "kube-prometheus-stack",
        "kube-prometheus-stack",
        versions.KUBE_PROMETHEUS_STACK_CHART,
        versions.KUBE_PROMETHEUS_STACK_REPO,
        k.MONITORING_NS,
        values,
    )


def eck_operator(layer: LayerSpec) -> ReleaseSpec:
    # Keys as in deploy/eck-operator/values.yaml@v3.5.0 (both security contexts are passed through toYaml).
    values = {
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": RESTRICTED_CONTAINER,
        # Only the logging namespace is managed: the operator's RBAC stays namespaced to it.
        "managedNamespaces": [k.LOGGING_NS],
        "resources": {"requests": {"cpu": "100m" if layer.eks else "20m", "memory": "150Mi"}},
    }
    return ReleaseSpec(
        "eck-operator", "eck-operator", versions.ECK_OPERATOR_CHART, versions.ECK_OPERATOR_REPO, k.ECK_NS, values
    )


# Namespaces whose containers' logs are shipped: the services (records in services.kit.logging's shape) and kind's
# PostgreSQL (plain text). Never `logging` or `logging-agent` (Logstash's and Elasticsearch's own lines would
# loop back through the pipeline they report on), nor the add-ons, whose JSON has shapes of its own
# (`kubectl logs` keeps those). Container log files are named <pod>_<namespace>_<container>-<id>.log.
SHIPPED_NAMESPACES = (k.SERVICES_NS, k.DATA_NS)
# What Fluent Bit's kubernetes filter adds under `kubernetes` with Labels and Annotations off
# (plugins/filter_kubernetes/kube_meta.c@v4.0.3); `host` is sent as GELF's host.
KUBERNETES_FIELDS = (
    "pod_name",
    "namespace_name",
    "pod_id",
    "pod_ip",
    "container_name",
    "docker_id",
    "container_hash",
    "container_image",
)

FLUENT_BIT_CONFIG = {
    "inputs": f"""[INPUT]
    Name              tail
    Path              {",".join(f"/var/log/containers/*_{ns}_*.log" for ns in SHIPPED_NAMESPACES)}
    multiline.parser  cri
    Tag               kube.*
    Mem_Buf_Limit     32MB
    Skip_Long_Lines   On
    DB                /var/fluent-bit/state/tail.db
""",
    # GELF (src/flb_pack_gelf.c@v4.0.3) drops a record without its short-message key and passes a level through
    # as a string unless it is 0-7 or a syslog keyword (emerg alert crit err warning notice info debug): every
    # record leaves here with `message` and a level GELF turns into a number. Python's `error` and `critical`
    # are not syslog keywords; a line that is not JSON keeps its text in `log` and has no level.
    "filters": """[FILTER]
    Name                kubernetes
    Match               kube.*
    Merge_Log           On
    Keep_Log            Off
    Labels              Off
    Annotations         Off
[FILTER]
    Name                nest
    Match               kube.*
    Operation           lift
    Nested_under        kubernetes
    Add_prefix          kubernetes_
[FILTER]
    Name                modify
    Match               kube.*
    Rename              log message
    Copy                event message
    Add                 message -
    Remove              _p
[FILTER]
    Name                modify
    Match               kube.*
    Condition           Key_value_equals level error
    Set                 level err
[FILTER]
    Name                modify
    Match               kube.*
    Condition           Key_value_equals level critical
    Set                 level crit
[FILTER]
    Name                modify
    Match               kube.*
    Add                 level info
""",
    "outputs": f"""[OUTPUT]
    Name                   gelf
    Match                  kube.*
    Host                   logstash-ls-gelf.{k.LOGGING_NS}.svc
    Port                   {k.GELF_PORT}
    Mode                   tcp
    Gelf_Short_Message_Key message
    Gelf_Level_Key         level
    Gelf_Host_Key          kubernetes_host
""",
}


def fluent_bit(layer: LayerSpec) -> ReleaseSpec:
    values = {
        "kind": "DaemonSet",
        "config": dict(FLUENT_BIT_CONFIG),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "20m" if not layer.eks else "50m", "memory": "64Mi"},
            "limits": {"memory": "128Mi"},
        },
        "extraVolumes": [{"name": "state", "hostPath": {"path": "/var/fluent-bit/state", "type": "DirectoryOrCreate"}}],
        "extraVolumeMounts": [{"name": "state", "mountPath": "/var/fluent-bit/state"}],
    }
    return ReleaseSpec(
        "fluent-bit", "fluent-bit", versions.FLUENT_BIT_CHART, versions.FLUENT_BIT_REPO, k.LOGGING_AGENT_NS, values
    )


def aws_load_balancer_controller(cluster_name: Any, role_arn: Any, vpc_id: Any, region: str) -> ReleaseSpec:
    values = {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "serviceAccount": {
            "create": True,
            "name": "aws-load-balancer-controller",
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        # Only TargetGroupBindings: it must not create load balancers for Services or Ingresses.
        "enableServiceMutatorWebhook": False,
        "replicaCount": 2,
    }
    return ReleaseSpec(
        "aws-load-balancer-controller",
        "aws-load-balancer-controller",
        versions.AWS_LOAD_BALANCER_CONTROLLER_CHART,
        versions.AWS_LOAD_BALANCER_CONTROLLER_REPO,
        "kube-system",
        values,
    )


def metrics_server(layer: LayerSpec) -> ReleaseSpec:
    # The chart's container context key is `securityContext` (kubernetes-sigs/metrics-server@metrics-server-helm-
    # chart-3.13.0 charts/metrics-server/values.yaml, templates/deployment.yaml); its default is already
    # restricted, this makes the choice ours.
    values: dict[str, Any] = {
        "replicas": 2 if layer.eks else 1,
        "podDisruptionBudget": {"enabled": layer.eks, "maxUnavailable": 1},
        "securityContext": RESTRICTED_CONTAINER,
    }
    if not layer.eks:
        # kind's kubelets serve self-signed certificates; EKS kubelets' are verifiable.
        values["args"] = ["--kubelet-insecure-tls"]
        # The chart asks for 200Mi (values.yaml `resources.requests`), sized for large clusters; metrics-server
        # needs about 2 MB per node (its README, "Metrics Server offers"): three kind nodes are a few MB.
        values["resources"] = {"requests": {"cpu": "25m", "memory": "64Mi"}}
    return ReleaseSpec(
        "metrics-server",
        "metrics-server",
        versions.METRICS_SERVER_CHART,
        versions.METRICS_SERVER_REPO,
        "kube-system",
        values,
    )


def cluster_autoscaler(cluster_name: Any, role_arn: Any, region: str) -> ReleaseSpec:
    values = {
        "autoDiscovery": {"clusterName": cluster_name},
        "awsRegion": region,
        "rbac": {
            "serviceAccount": {"name": "cluster-autoscaler", "annotations": {"eks.amazonaws.com/role-arn": role_arn}}
        },
        "extraArgs": {"balance-similar-node-groups": True, "skip-nodes-with-system-pods": False},
    }
    return ReleaseSpec(
        "cluster-autoscaler",
        "cluster-autoscaler",
        versions.CLUSTER_AUTOSCALER_CHART,
        versions.CLUSTER_AUTOSCALER_REPO,
        "kube-system",
        values,
    )
