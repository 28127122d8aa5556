"""Kubernetes objects the layer applies itself (not through a chart): pure builders returning manifests.

Namespaces with Pod Security labels (their NetworkPolicies are in ``netpol``), the EKS default StorageClass, the
Gateway with its NginxProxy, PodDisruptionBudget and HTTPRoutes, the
PrometheusRule and dashboards, the ECK resources (Elasticsearch, Kibana, Logstash) with the ILM job, and
the kind stack's in-cluster PostgreSQL. ``components`` declares them; the offline plan validates them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from services import catalog
from services.catalog import Service
from services.deploy.alerts import alert_rules
from services.kit import logging as kit_logging
from shop_platform import versions
from shop_platform.k8s import addons, dashboards
from shop_platform.k8s import spec as k
from shop_platform.k8s.spec import LayerSpec

Manifest = dict[str, Any]
PART_OF = {"app.kubernetes.io/part-of": "retail", "app.kubernetes.io/managed-by": "pulumi"}

# Pod Security Standard enforced per namespace, and why where it is not "restricted". `warn`/`audit` are
# always "restricted", so any drift shows up in kubectl warnings and the audit log.
POD_SECURITY: Mapping[str, tuple[str, str]] = {
    k.SERVICES_NS: ("restricted", "the services' chart sets every restricted field"),
    k.DATA_NS: ("restricted", "PostgreSQL runs as its image's postgres user with a restricted context"),
    k.LOGGING_NS: (
        "restricted",
        "ECK pod templates below set the restricted context on every container, the "
        "operator's init containers included; mmap off, no sysctl init",
    ),
    k.GATEWAY_NS: (
        "restricted",
        "NGINX Gateway Fabric 2.1.0's control plane and certificate Job set restricted "
        "contexts; its data-plane init container lacks allowPrivilegeEscalation=false "
        "(internal/controller/provisioner/objects.go), which the Gateway's NginxProxy patch adds",
    ),
    k.ECK_NS: (
        "restricted",
        "the eck-operator chart renders the values' restricted pod and container contexts "
        "(templates/statefulset.yaml), no init container, no host access",
    ),
    k.MONITORING_NS: (
        "privileged",
        "node-exporter (kube-prometheus-stack) needs hostNetwork, hostPID and hostPath to read node metrics",
    ),
    k.LOGGING_AGENT_NS: ("privileged", "Fluent Bit reads /var/log/containers through hostPath on every node"),
    k.ISTIO_NS: (
        "privileged",
        "istio-cni's node agent runs on the host network with hostPath mounts and ztunnel "
        "needs NET_ADMIN and SYS_ADMIN to enter pods' network namespaces (istio/istio@1.30.3 "
        "manifests/charts/istio-cni and ztunnel templates/daemonset.yaml)",
    ),
}

# Istio ambient enrolment per namespace (shop_platform.k8s.mesh): True, or why the namespace stays out. Enrolled
# pods talk HBONE (mutual TLS with their service account's SPIFFE identity) to each other, and the mesh-wide STRICT
# PeerAuthentication makes each refuse plaintext from anything outside the mesh. Every namespace the layer creates
# must be listed (tests/platform/k8s/test_mesh.py); kube-system is not the layer's and istio-cni skips it
# (manifests/charts/istio-cni/values.yaml excludeNamespaces).
MESH_ENROLMENT: Mapping[str, Literal[True] | str] = {
    k.SERVICES_NS: True,
    k.DATA_NS: True,
    k.GATEWAY_NS: True,
    k.MONITORING_NS: True,
    k.LOGGING_NS: True,
    k.LOGGING_AGENT_NS: True,
    k.ECK_NS: True,
    k.ISTIO_NS: "the mesh itself: ztunnel and istio-cni build the data plane and cannot be captured by it; istiod "
    "serves ztunnel over TLS on 15012, ztunnel authenticating with its service-account token",
}


def mesh_enrolled(namespace: str) -> bool:
    return MESH_ENROLMENT[namespace] is True


def _meta(
    name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**PART_OF, **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


LOGGING_NAMESPACES = frozenset({k.LOGGING_NS, k.LOGGING_AGENT_NS, k.ECK_NS})
# EKS: the AWS Load Balancer Controller adds a readiness gate to pods of namespaces with this label when a
# TargetGroupBinding targets them (aws/eks-charts@aws-load-balancer-controller 1.14.1 templates/webhook.yaml,
# webhook mpod.elbv2.k8s.aws): an NGINX pod counts as ready only once the ALB sees it healthy, so a rollout
# never removes the last healthy target.
READINESS_GATE_LABEL = {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}


def namespace_names(layer: LayerSpec) -> list[str]:
    """Every namespace the layer creates on this stack."""
    names = [n for n in POD_SECURITY if not (n == k.DATA_NS and layer.eks)]  # RDS on EKS: no in-cluster database
    return [n for n in names if layer.logging or n not in LOGGING_NAMESPACES]


def namespaces(layer: LayerSpec) -> list[Manifest]:
    out = []
    for name in namespace_names(layer):
        level, reason = POD_SECURITY[name]
        extra = dict(READINESS_GATE_LABEL) if layer.eks and name == k.GATEWAY_NS else {}
        annotations = {"shop/pod-security-reason": reason}
        enrolment = MESH_ENROLMENT[name]
        if enrolment is True:
            extra[k.MESH_DATAPLANE_LABEL] = "ambient"
        else:
            annotations["shop/mesh-exempt-reason"] = enrolment
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": _meta(
                    name,
                    labels={
                        "pod-security.kubernetes.io/enforce": level,
                        "pod-security.kubernetes.io/enforce-version": f"v{layer.kube_version}",
                        "pod-security.kubernetes.io/warn": "restricted",
                        "pod-security.kubernetes.io/audit": "restricted",
                        **extra,
                    },
                    annotations=annotations,
                ),
            }
        )
    return out


def storage_class(kms_key_arn: Any) -> Manifest:
    """EKS: the default StorageClass (EKS >= 1.30 ships none): gp3 through the EBS CSI driver, encrypted with the
    cluster's volume key, bound where the pod lands (EBS volumes are zonal). Parameter names from
    kubernetes-sigs/aws-ebs-csi-driver docs/parameters.md."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": _meta(k.EKS_STORAGE_CLASS, annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
        "provisioner": "ebs.csi.aws.com",
        "parameters": {
            "type": "gp3",
            "encrypted": "true",
            "kmsKeyId": kms_key_arn,
            "csi.storage.k8s.io/fstype": "ext4",
        },
        "reclaimPolicy": "Delete",
        "allowVolumeExpansion": True,
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def default_deny(namespace: str) -> Manifest:
    """Nothing in or out of the namespace unless a policy allows it (each chart release adds its allow-list)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("default-deny", namespace),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def _rule_namespaces(rule: Mapping[str, Any], peers_key: str, policy_ns: str) -> set[str] | None:
    """The namespaces a rule's peers live in; None if any peer is an address block or every namespace."""
    out: set[str] = set()
    for peer in rule.get(peers_key) or []:
        if "ipBlock" in peer:
            return None
        if "namespaceSelector" in peer:
            name = (peer["namespaceSelector"].get("matchLabels") or {}).get("kubernetes.io/metadata.name")
            if name is None:
                return None
            out.add(name)
        else:
            out.add(policy_ns)
    return out or None


def admit_hbone(policy: Manifest) -> Manifest:
    """The same NetworkPolicy with HBONE's port beside every TCP port of a rule between enrolled pods: a mesh
    connection reaches the destination pod on MESH_HBONE_PORT, from the same source pod. Rules to or from address
    blocks (the edge, the API server, nodes, RDS) and to namespaces outside the mesh (CoreDNS) stay as they are:
    that traffic is not tunnelled."""
    namespace = policy["metadata"]["namespace"]
    if not mesh_enrolled(namespace):
        return policy
    hbone = {"port": k.MESH_HBONE_PORT, "protocol": "TCP"}
    spec = dict(policy["spec"])
    for key, peers_key in (("ingress", "from"), ("egress", "to")):
        rules = []
        for rule in spec.get(key) or []:
            ports = rule.get("ports") or []
            peers_ns = _rule_namespaces(rule, peers_key, namespace)
            meshed = peers_ns is not None and all(MESH_ENROLMENT.get(n) is True for n in peers_ns)
            if meshed and any(p.get("protocol", "TCP") == "TCP" for p in ports) and hbone not in ports:
                rule = {**rule, "ports": [*ports, hbone]}
            rules.append(rule)
        if key in spec:
            spec[key] = rules
    return {**policy, "spec": spec}


# --- edge -------------------------------------------------------------------------------------------------


def public_path_matches() -> list[dict[str, Any]]:
    """The paths the edge forwards to the gateway service: the first segment of every catalog public prefix
    (``/api/``, ``/.well-known/``) plus exact ``/healthz`` (the ALB and Route 53 health checks). Never
    ``/internal``: the catalog refuses public prefixes under it, and nothing else is routed."""
    firsts = sorted({"/" + p.strip("/").split("/")[0] + "/" for s in catalog.SERVICES for p in s.public_prefixes})
    matches = [{"path": {"type": "PathPrefix", "value": f}} for f in firsts]
    matches.append({"path": {"type": "Exact", "value": "/healthz"}})
    return matches


GATEWAY_PROXY = "shop-proxy"
# A rollout waits this long after a new NGINX pod is ready before it removes an old one: the ALB target group
# has then registered it (the readiness gate covers registration on EKS; this covers connection draining).
GATEWAY_MIN_READY_SECONDS = 15


def gateway_proxy(layer: LayerSpec) -> Manifest:
    """The Gateway's own NginxProxy (NGF merges it over the GatewayClass one the chart writes: fields set here win,
    internal/controller/state/graph/nginxproxy.go buildEffectiveNginxProxy at v2.1.0). The chart has no value
    for minReadySeconds, so it is a patch on the data-plane Deployment (NginxProxy v1alpha2
    kubernetes.deployment.patches, applied by the provisioner's applyPatches). The same strategic-merge patch
    gives the provisioner's "init" container the one field the namespace's restricted level misses."""
    patch = {
        "spec": {
            "minReadySeconds": GATEWAY_MIN_READY_SECONDS,
            "template": {
                "spec": {"initContainers": [{"name": "init", "securityContext": {"allowPrivilegeEscalation": False}}]}
            },
        }
    }
    deployment: dict[str, Any] = {"patches": [{"type": "StrategicMerge", "value": patch}]}
    if layer.eks:
        # Spread the data plane over zones and nodes so one zone or node drain keeps targets in the ALB.
        deployment["pod"] = {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": key,
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": dict(k.GATEWAY_POD_LABELS)},
                }
                for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
            ]
        }
    return {
        "apiVersion": "gateway.nginx.org/v1alpha2",
        "kind": "NginxProxy",
        "metadata": _meta(GATEWAY_PROXY, k.GATEWAY_NS),
        "spec": {"kubernetes": {"deployment": deployment}},
    }


def gateway_disruption_budget() -> Manifest:
    """Voluntary disruptions (node drains, Cluster Autoscaler scale-downs) take one NGINX pod at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(f"{k.GATEWAY_DATA_PLANE_SERVICE}", k.GATEWAY_NS),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": dict(k.GATEWAY_POD_LABELS)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


# NGINX Gateway Fabric 2.1.0 serves Prometheus metrics on a container port named "metrics" (9113) in its control
# plane (charts/nginx-gateway-fabric/templates/deployment.yaml) and in every data plane it provisions
# (internal/controller/provisioner/objects.go); the chart has no ServiceMonitor value.
GATEWAY_METRICS_PORT = 9113


def gateway_pod_monitors() -> list[Manifest]:
    """The edge observed: request counts and upstream state of NGINX, reload/config health of its control plane."""
    return [
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": _meta(name, k.GATEWAY_NS),
            "spec": {"selector": selector, "podMetricsEndpoints": [{"port": "metrics", "interval": "30s"}]},
        }
        for name, selector in (
            ("nginx-data-plane", {"matchLabels": dict(k.GATEWAY_POD_LABELS)}),
            ("nginx-gateway-fabric", {"matchLabels": dict(k.NGF_CONTROL_PLANE_POD_LABELS)}),
        )
    ]


def gateway(layer: LayerSpec) -> Manifest:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": _meta(k.GATEWAY_NAME, k.GATEWAY_NS),
        "spec": {
            "gatewayClassName": "nginx",
            "infrastructure": {
                "parametersRef": {"group": "gateway.nginx.org", "kind": "NginxProxy", "name": GATEWAY_PROXY}
            },
            "listeners": [
                {
                    "name": "http",
                    "protocol": "HTTP",
                    "port": k.GATEWAY_LISTENER_PORT,
                    # TLS ends at the ALB on EKS (ACM certificate); kind serves plain HTTP on localhost.
                    "allowedRoutes": {
                        "namespaces": {
                            "from": "Selector",
                            "selector": {"matchLabels": {"kubernetes.io/metadata.name": k.SERVICES_NS}},
                        }
                    },
                }
            ],
        },
    }


def page_path_matches(shop: Service) -> list[dict[str, Any]]:
    """The page server's paths (``catalog`` ``edge_pages``): ``/`` exactly, every other page with what is below
    it (a Gateway API PathPrefix matches whole path elements: ``/cart`` covers ``/cart/items``, never
    ``/cartx``). Nothing else reaches it: its operational routes stay inside."""
    return [
        {"path": {"type": "Exact", "value": "/"}} if page == "/" else {"path": {"type": "PathPrefix", "value": page}}
        for page in shop.edge_pages
    ]


def http_route() -> Manifest:
    gw = catalog.get(catalog.GATEWAY)
    rules: list[dict[str, Any]] = [
        {"matches": public_path_matches(), "backendRefs": [{"name": gw.name, "port": gw.port}]}
    ]
    if (shop := catalog.page_server()) is not None:
        rules.append({"matches": page_path_matches(shop), "backendRefs": [{"name": shop.name, "port": shop.port}]})
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta("shop-api", k.SERVICES_NS),
        "spec": {
            "parentRefs": [{"name": k.GATEWAY_NAME, "namespace": k.GATEWAY_NS, "sectionName": "http"}],
            "rules": rules,
        },
    }


def target_group_binding(target_group_arn: Any) -> Manifest:
    """EKS: the AWS Load Balancer Controller registers the NGINX data-plane pods in the ALB's target group.
    No ``spec.networking``: Pulumi owns every security-group rule (platform/README.md)."""
    return {
        "apiVersion": "elbv2.k8s.aws/v1beta1",
        "kind": "TargetGroupBinding",
        "metadata": _meta(k.GATEWAY_NAME, k.GATEWAY_NS),
        "spec": {
            "targetGroupARN": target_group_arn,
            "targetType": "ip",
            "serviceRef": {"name": k.GATEWAY_DATA_PLANE_SERVICE, "port": k.GATEWAY_LISTENER_PORT},
        },
    }


# --- observability ----------------------------------------------------------------------------------------


def prometheus_rule() -> Manifest:
    """The alert rules of services.deploy.alerts.alert_rules, unchanged (defined once, tested by promtool)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta("retail-alerts", k.MONITORING_NS),
        "spec": alert_rules(),
    }


def dashboard_configmaps() -> list[Manifest]:
    """One ConfigMap per service; Grafana's sidecar loads ConfigMaps labelled grafana_dashboard=1."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"dashboard-{s.name}", k.MONITORING_NS, {"grafana_dashboard": "1"}),
            "data": {f"shop-{s.name}.json": dashboards.dashboard_json(s)},
        }
        for s in catalog.SERVICES
    ]


# --- logging (ECK) ----------------------------------------------------------------------------------------

ES_NAME = "logs"
RESTRICTED_CONTAINER: Mapping[str, Any] = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_POD: Mapping[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}

# The init containers the pinned operator (versions.ECK_OPERATOR_CHART) adds to each pod, by name. ECK merges an
# init container of the pod template into its own one of the same name, the template's fields winning
# (PodTemplateBuilder.WithInitContainers, pkg/controller/common/defaults/pod_template.go@v3.5.0), so naming them
# here gives each the restricted context whatever the operator defaults: Logstash's gets only
# `privileged: false` (pkg/controller/logstash/initcontainer.go@v3.5.0) and the namespace enforces restricted.
ECK_INIT_CONTAINERS: Mapping[str, tuple[str, ...]] = {
    # pkg/controller/elasticsearch/initcontainer/initcontainer.go@v3.5.0 (no keystore one: no secureSettings)
    "Elasticsearch": ("elastic-internal-init-filesystem", "elastic-internal-suspend"),
    # pkg/controller/kibana/initcontainer/prepare_fs.go@v3.5.0 (kbvolume.InitContainerName)
    "Kibana": ("elastic-internal-init",),
    "Logstash": ("logstash-internal-init-config",),
}


def _pod_template(
    kind: str,
    container: str,
    cpu: str,
    memory: str,
    extra: Mapping[str, Any] | None = None,
    init: Sequence[Mapping[str, Any]] = (),
    volumes: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    operator_init = [
        {"name": name, "securityContext": dict(RESTRICTED_CONTAINER)} for name in ECK_INIT_CONTAINERS[kind]
    ]
    spec: dict[str, Any] = {
        "securityContext": dict(RESTRICTED_POD),
        "automountServiceAccountToken": False,
        "initContainers": [*operator_init, *init],
        "containers": [
            {
                "name": container,
                "securityContext": dict(RESTRICTED_CONTAINER),
                "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
                **(extra or {}),
            }
        ],
    }
    if volumes:
        spec["volumes"] = list(volumes)
    return {"spec": spec}


def elasticsearch(layer: LayerSpec) -> Manifest:
    memory = "2Gi" if layer.eks else "1Gi"
    return {
        "apiVersion": "elasticsearch.k8s.elastic.co/v1",
        "kind": "Elasticsearch",
        "metadata": _meta(ES_NAME, k.LOGGING_NS),
        "spec": {
            "version": versions.ELASTIC_STACK_VERSION,
            # Security (TLS on HTTP and transport, authentication) is ECK's default and cannot be
            # turned off through `config` (esv1.UnsupportedSettings).
            "http": {"tls": {"selfSignedCertificate": {"disabled": False}}},
            # Roles here override ECK's own of the same name (aggregateRoles: predefined <
            # user-provided, pkg/controller/elasticsearch/user/reconcile.go@v3.5.0).
            "auth": {"roles": [{"secretName": LOGSTASH_ROLE_SECRET}]},
            "nodeSets": [
                {
                    "name": "default",
                    "count": layer.kubernetes.elasticsearch_nodes,
                    # No mmap: no privileged sysctl init container, so the namespace stays restricted.
                    "config": {"node.store.allow_mmap": False},
                    "podTemplate": _pod_template(
                        "Elasticsearch", "elasticsearch", "500m" if layer.eks else "100m", memory
                    ),
                    "volumeClaimTemplates": [
                        {
                            "metadata": {"name": "elasticsearch-data"},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {
                                    "requests": {"storage": f"{layer.kubernetes.elasticsearch_storage_gib}Gi"}
                                },
                            },
                        }
                    ],
                }
            ],
        },
    }


# Kibana: ECK's default memory, 2Gi (kibana.DefaultMemoryLimits, pkg/controller/kibana/pod.go@v3.5.0, raised from
# 1Gi because Kibana 9 containers of 1Gi crash during plugin initialisation); kind gets the same, it is the floor.
KIBANA_MEMORY = "2Gi"


def kibana(layer: LayerSpec) -> Manifest:
    return {
        "apiVersion": "kibana.k8s.elastic.co/v1",
        "kind": "Kibana",
        "metadata": _meta("kibana", k.LOGGING_NS),
        "spec": {
            "version": versions.ELASTIC_STACK_VERSION,
            "count": 1,
            "elasticsearchRef": {"name": ES_NAME},
            "podTemplate": _pod_template("Kibana", "kibana", "100m", KIBANA_MEMORY),
        },
    }


# The role ECK gives the Elasticsearch user it creates for a Logstash `elasticsearchRefs` entry
# (pkg/controller/association/controller/logstash_es.go@v3.5.0). ECK's own definition covers logstash-*, logs-*
# and the like but not shop-* (pkg/controller/elasticsearch/user/roles.go@v3.5.0): redefined here to exactly what
# the pipeline does - write and create the shop-* indices (no templates, no ILM: the ILM Job owns both).
LOGSTASH_ROLE = "eck_logstash_user_role"
LOGSTASH_ROLE_SECRET = "logstash-es-role"  # noqa: S105 - the Secret object's name
LOG_INDEX_PATTERN = "shop-*"
# Index privileges (elastic/elasticsearch IndexPrivilege.java): `index` covers the bulk index action,
# `create_index` the daily index, `auto_configure` the mapping updates indexing may trigger (not in `index`);
# `monitor` is its version and licence checks (GET /, GET /_license).
LOGSTASH_INDEX_PRIVILEGES = ("create_index", "index", "auto_configure")


def logstash_role() -> dict[str, Any]:
    return {
        LOGSTASH_ROLE: {
            "cluster": ["monitor"],
            "indices": [{"names": [LOG_INDEX_PATTERN], "privileges": list(LOGSTASH_INDEX_PRIVILEGES)}],
        }
    }


def logstash_role_secret() -> Manifest:
    import yaml  # type: ignore[import-untyped]

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(LOGSTASH_ROLE_SECRET, k.LOGGING_NS),
        "stringData": {"roles.yml": yaml.safe_dump(logstash_role(), sort_keys=True)},
    }


LOGSTASH_PIPELINE = """input {
  gelf { port => %(port)d use_udp => true use_tcp => true }
}
filter {
  # The services log JSON with a "service" field (services/kit/logging.py); Fluent Bit keeps it as _service.
  if ![service] { mutate { add_field => { "service" => "%%{[kubernetes_namespace_name]}" } } }
  mutate { lowercase => ["service"] }
}
output {
  elasticsearch {
    # ECK injects LOGS_ES_* for elasticsearchRefs[clusterName=logs]: TLS and the user with LOGSTASH_ROLE.
    hosts => ["${LOGS_ES_HOSTS}"]
    user => "${LOGS_ES_USER}"
    password => "${LOGS_ES_PASSWORD}"
    ssl_certificate_authorities => "${LOGS_ES_SSL_CERTIFICATE_AUTHORITY}"
    # One index per service and day; the ILM policy "shop-logs" deletes them after the retention, and the
    # index template (put by the ILM Job, not by Logstash) maps their fields.
    index => "shop-%%{[service]}-%%{+YYYY.MM.dd}"
    data_stream => false
    ilm_enabled => false
    manage_template => false
  }
}
"""

# Logstash: ECK's default is 2Gi (logstash.DefaultMemoryLimit, pkg/controller/logstash/pod.go@v3.5.0) for the
# image's 1g heap (config/jvm.options -Xms1g -Xmx1g); the rest is metaspace, code cache, threads and direct
# buffers, so a 1Gi container with that heap is OOM-killed. kind: a 768m heap in 1.5Gi, the same headroom share.
# (heap, memory limit, cpu request) per target.
LOGSTASH_SIZES: Mapping[bool, tuple[str, str, str]] = {True: ("1g", "2Gi", "1"), False: ("768m", "1536Mi", "200m")}
# JRuby needs a temporary directory (jffi extracts its native stub there; Ruby's Dir.tmpdir refuses a
# world-writable one without the sticky bit, which an emptyDir is): a 0700 directory on an emptyDir under the
# read-only root, made by an init container that runs the Logstash image (ECK fills the image in:
# WithInitContainerDefaults, pod_template.go@v3.5.0).
LOGSTASH_TMP = "/tmp/logstash"  # noqa: S108 - on an emptyDir


def logstash(layer: LayerSpec) -> Manifest:
    heap, memory, cpu = LOGSTASH_SIZES[layer.eks]
    tmp_mount = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 - an emptyDir
    extra = {
        "env": [
            {"name": "LS_JAVA_OPTS", "value": f"-Xms{heap} -Xmx{heap} -Djava.io.tmpdir={LOGSTASH_TMP}"},
            {"name": "TMPDIR", "value": LOGSTASH_TMP},
        ],
        "volumeMounts": [tmp_mount],
    }
    make_tmp = {
        "name": "logstash-tmp",
        "command": ["mkdir", "-p", "-m", "0700", LOGSTASH_TMP],
        "securityContext": dict(RESTRICTED_CONTAINER),
        "volumeMounts": [tmp_mount],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
    }
    return {
        "apiVersion": "logstash.k8s.elastic.co/v1alpha1",
        "kind": "Logstash",
        "metadata": _meta("logstash", k.LOGGING_NS),
        "spec": {
            "version": versions.ELASTIC_STACK_VERSION,
            "count": 1,
            "elasticsearchRefs": [{"name": ES_NAME, "clusterName": "logs"}],
            "pipelines": [{"pipeline.id": "gelf", "config.string": LOGSTASH_PIPELINE % {"port": k.GELF_PORT}}],
            "services": [
                {
                    "name": "gelf",
                    "service": {
                        "spec": {
                            "type": "ClusterIP",
                            "ports": [
                                {"name": "gelf-udp", "port": k.GELF_PORT, "protocol": "UDP", "targetPort": k.GELF_PORT},
                                {"name": "gelf-tcp", "port": k.GELF_PORT, "protocol": "TCP", "targetPort": k.GELF_PORT},
                            ],
                        }
                    },
                }
            ],
            "podTemplate": _pod_template(
                "Logstash", "logstash", cpu, memory, extra, init=[make_tmp], volumes=[{"name": "tmp", "emptyDir": {}}]
            ),
        },
    }


def ilm_policy(retention_days: int) -> dict[str, Any]:
    return {
        "policy": {
            "phases": {"hot": {"actions": {}}, "delete": {"min_age": f"{retention_days}d", "actions": {"delete": {}}}}
        }
    }


def index_template(layer: LayerSpec) -> dict[str, Any]:
    """shop-* indices: ILM retention, one replica wherever a second node can hold it (losing a node loses no
    logs), and an explicit mapping (``log_mapping``)."""
    return {
        "index_patterns": [LOG_INDEX_PATTERN],
        "priority": 200,
        "template": {
            "settings": {
                "index.lifecycle.name": "shop-logs",
                "number_of_replicas": min(1, layer.kubernetes.elasticsearch_nodes - 1),
            },
            "mappings": log_mapping(),
        },
    }


# Fields the collectors add to every record, as they reach Elasticsearch: Fluent Bit's CRI parser (`stream`,
# `time`) and kubernetes filter (lifted as kubernetes_*; the node name becomes GELF's `host`), the GELF envelope
# (`version`, numeric `level`) and Logstash's gelf input (`source_host`) and event (`@timestamp`, `@version`).
COLLECTOR_FIELDS: Mapping[str, str] = {
    "@timestamp": "date",
    "time": "date",
    "level": "byte",
    "@version": "keyword",
    "version": "keyword",
    "host": "keyword",
    "source_host": "keyword",
    "stream": "keyword",
    "tags": "keyword",
    **{f"kubernetes_{name}": "keyword" for name in addons.KUBERNETES_FIELDS},
}
_TEXT_FIELDS = frozenset({"message", "exc_info"})
_DATE_FIELDS = frozenset({"ts"})


def log_mapping() -> dict[str, Any]:
    """Every field of the services' records (services.kit.logging.RECORD_FIELDS, one type each) and of the
    collectors, mapped explicitly; anything else stays in _source unindexed (`dynamic: false`), so no record is
    ever rejected for a mapping conflict, and a malformed number or date is kept rather than refused."""
    es_types = {str: "keyword", int: "long", float: "double"}
    types = {name: es_types[kind] for name, kind in kit_logging.RECORD_FIELDS.items()}
    types.update(dict.fromkeys(_TEXT_FIELDS, "text"))
    types.update(dict.fromkeys(_DATE_FIELDS, "date"))
    types.update(COLLECTOR_FIELDS)
    properties: dict[str, Any] = {}
    for name, es_type in sorted(types.items()):
        if es_type == "keyword":
            properties[name] = {"type": "keyword", "ignore_above": 1024}  # longer terms would fail the document
        elif es_type == "text":
            properties[name] = {"type": "text"}
        else:
            properties[name] = {"type": es_type, "ignore_malformed": True}
    return {"dynamic": False, "date_detection": False, "properties": properties}


ILM_JOB_POD_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "shop-logs-ilm"}
# `pulumi up` waits for every Job it applies. Kubernetes fails a Job after activeDeadlineSeconds with reason
# DeadlineExceeded; Pulumi's own wait (annotation pulumi.com/timeoutSeconds: pulumi/pulumi-kubernetes
# provider/pkg/metadata TimeoutDuration) ends a minute later, so `up` reports that reason, not a bare timeout.
# 15 minutes covers a first pull of the Elasticsearch image and its start on a slow line.
JOB_DEADLINE_SECONDS = 900


def job_await_annotations() -> dict[str, str]:
    return {"pulumi.com/timeoutSeconds": str(JOB_DEADLINE_SECONDS + 60)}


ILM_SCRIPT = """set -eu
es="https://logs-es-http.logging.svc:9200"
curl_es() { curl -sf --cacert /es-ca/ca.crt -u "elastic:$(cat /es-user/elastic)" "$@"; }
until curl_es "$es/_cluster/health?wait_for_status=yellow&timeout=30s"; do
  echo "waiting for Elasticsearch $es (pods and PersistentVolumeClaims: kubectl -n logging get pods,pvc)" >&2
  sleep 5
done
json='Content-Type: application/json'
curl_es -X PUT "$es/_ilm/policy/shop-logs" -H "$json" --data-binary @/ilm/policy.json
curl_es -X PUT "$es/_index_template/shop-logs" -H "$json" --data-binary @/ilm/template.json
"""


def ilm_setup(layer: LayerSpec) -> list[Manifest]:
    """Retention: a Job puts the ILM policy (delete after N days) and the index template for shop-* indices.
    ECK has no ILM resource; the Job is idempotent (PUT) and named after what it puts, so a new policy or
    template is a new Job (a Job's spec is immutable, and the ConfigMap's content is not part of it)."""
    import hashlib
    import json

    data = {
        "policy.json": json.dumps(ilm_policy(layer.kubernetes.log_retention_days)),
        "template.json": json.dumps(index_template(layer)),
        "setup.sh": ILM_SCRIPT,
    }
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("shop-logs-ilm", k.LOGGING_NS), "data": data}
    labels = dict(ILM_JOB_POD_LABELS)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(f"shop-logs-ilm-{digest}", k.LOGGING_NS, labels, annotations=job_await_annotations()),
        "spec": {
            "backoffLimit": 10,
            "ttlSecondsAfterFinished": 86400,
            "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": {**PART_OF, **labels}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "automountServiceAccountToken": False,
                    # Any UID runs sh + curl; a high one never collides with a host user (CKV_K8S_40).
                    "securityContext": {**RESTRICTED_POD, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
                    "containers": [
                        {
                            "name": "ilm",
                            "image": f"docker.elastic.co/elasticsearch/elasticsearch:{versions.ELASTIC_STACK_VERSION}",
                            "imagePullPolicy": "Always",
                            "command": ["/bin/sh", "/ilm/setup.sh"],
                            "securityContext": {**RESTRICTED_CONTAINER, "runAsUser": 10001},
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "32Mi"},
                                "limits": {"cpu": "100m", "memory": "64Mi"},
                            },
                            "volumeMounts": [
                                {"name": "ilm", "mountPath": "/ilm", "readOnly": True},
                                {"name": "es-user", "mountPath": "/es-user", "readOnly": True},
                                {"name": "es-ca", "mountPath": "/es-ca", "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "ilm", "configMap": {"name": "shop-logs-ilm"}},
                        {"name": "es-user", "secret": {"secretName": f"{ES_NAME}-es-elastic-user"}},
                        {"name": "es-ca", "secret": {"secretName": f"{ES_NAME}-es-http-certs-public"}},
                    ],
                },
            },
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("shop-logs-ilm", k.LOGGING_NS),
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": dict(k.DNS_POD_LABELS)},
                        }
                    ],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                },
                {
                    "to": [{"podSelector": {"matchLabels": {"elasticsearch.k8s.elastic.co/cluster-name": ES_NAME}}}],
                    "ports": [{"port": 9200, "protocol": "TCP"}],
                },
            ],
        },
    }
    return [cm, job, admit_hbone(policy)]


# --- kind: in-cluster PostgreSQL ----------------------------------------------------------------------------

POSTGRES_SECRET = "postgres-admin"  # noqa: S105 - the Secret object's name


def postgres_init_sql() -> str:
    """One database per catalog service that owns data (the same names as on RDS)."""
    return "".join(f'CREATE DATABASE "{s.database_name}";\n' for s in catalog.database_services())


def postgres() -> list[Manifest]:
    """StatefulSet, Service, init SQL and network policy; the password Secret (POSTGRES_SECRET) is declared
    as a typed Secret by the component so its value stays a Pulumi secret."""
    labels = dict(k.POSTGRES_POD_LABELS)
    init = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("postgres-init", k.DATA_NS),
        "data": {"01-databases.sql": postgres_init_sql()},
    }
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("postgres", k.DATA_NS, labels),
        "spec": {"selector": labels, "ports": [{"name": "postgres", "port": 5432, "targetPort": 5432}]},
    }
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta("postgres", k.DATA_NS, labels),
        "spec": {
            "serviceName": "postgres",
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**PART_OF, **labels}},
                "spec": {
                    "automountServiceAccountToken": False,
                    # The official image runs as an arbitrary UID when its data directory is writable
                    # (fsGroup); a high one never collides with a host user (CKV_K8S_40).
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10999,
                        "runAsGroup": 10999,
                        "fsGroup": 10999,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "postgres",
                            "image": versions.LOCAL_POSTGRES_IMAGE,
                            # kind only: pulled once per node, not from Docker Hub (rate limits) on every restart.
                            "imagePullPolicy": "IfNotPresent",
                            "env": [
                                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                {"name": "POSTGRES_PASSWORD_FILE", "value": "/secrets/password"},
                            ],
                            "ports": [{"name": "postgres", "containerPort": 5432}],
                            "securityContext": {**RESTRICTED_CONTAINER, "runAsUser": 10999},
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            "readinessProbe": {
                                "exec": {"command": ["pg_isready", "-U", "postgres"]},
                                "periodSeconds": 5,
                            },
                            "livenessProbe": {
                                "exec": {"command": ["pg_isready", "-U", "postgres"]},
                                "periodSeconds": 10,
                                "failureThreshold": 6,
                            },
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                                {"name": "run", "mountPath": "/var/run/postgresql"},
                                {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
                                {"name": "init", "mountPath": "/docker-entrypoint-initdb.d", "readOnly": True},
                                {"name": "secrets", "mountPath": "/secrets", "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "run", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "init", "configMap": {"name": "postgres-init"}},
                        {"name": "secrets", "secret": {"secretName": POSTGRES_SECRET}},
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
                }
            ],
        },
    }
    clients = [s.name for s in catalog.database_services()]
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("postgres", k.DATA_NS),
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": k.SERVICES_NS}},
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "app.kubernetes.io/name", "operator": "In", "values": clients}
                                ]
                            },
                        }
                    ],
                    "ports": [{"port": 5432, "protocol": "TCP"}],
                }
            ],
            "egress": [],
        },
    }
    return [init, svc, sts, admit_hbone(policy)]


def database_url(svc_name: str, password: str) -> str:
    db = catalog.get(svc_name).database_name
    return f"postgresql://postgres:{password}@postgres.{k.DATA_NS}.svc:5432/{db}"
