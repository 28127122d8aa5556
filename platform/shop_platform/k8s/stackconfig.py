"""Stack config of the Kubernetes layer: the ``kubernetes`` object (every stack) and the ``local`` stack.

Pure like ``shop_platform.config``: raw mapping in, typed object out, errors name the key and what is
allowed (``ConfigError``). ``layer_spec_for_eks`` / ``layer_spec_for_local`` turn config into ``LayerSpec``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from services import catalog
from shop_platform import versions
from shop_platform.config import ConfigError, StackConfig
from shop_platform.images import parse_registry_host
from shop_platform.k8s.spec import SMALL_SIZING, AlertReceiver, LayerSpec
from shop_platform.network import plan_subnets

KUBERNETES_KEYS: Final = ("imageRegistry", "imageTag", "imageDigests", "alertWebhookUrl", "adminEmail",
                          "logRetentionDays", "elasticsearchNodes", "elasticsearchStorageGib",
                          "prometheusRetentionDays", "prometheusStorageGib")
LOCAL_KEYS: Final = ("clusterName", "podSubnet", "kubeVersion", "profile")
# kind profiles: "full" runs everything EKS runs; "light" leaves out the log pipeline (ECK, Elasticsearch,
# Kibana, Logstash, Fluent Bit) so the stack fits an 8 GB laptop (figures in charts/README.md).
KIND_PROFILES: Final = ("full", "light")
LOCAL_TOP_LEVEL_KEYS: Final = ("environment", "owner", "kubernetes", "kind")
DEFAULT_IMAGE_TAG: Final = "0.1.0"
_TAG: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST: Final = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    image_tag: str
    image_digests: Mapping[str, str] = field(default_factory=dict)
    # EKS: the shared registry's host (shop_platform.images); kind loads images into its nodes instead.
    image_registry: str | None = None
    alert_webhook_url: str | None = None
    admin_email: str = "admin@shop.local"
    log_retention_days: int = 7
    elasticsearch_nodes: int = 1
    elasticsearch_storage_gib: int = 10
    prometheus_retention_days: int = 7
    prometheus_storage_gib: int = 20


@dataclass(frozen=True, slots=True)
class LocalStackConfig:
    stack: str
    owner: str
    cluster_name: str
    pod_subnet: str
    kube_version: str
    kubernetes: KubernetesConfig
    environment: str = "local"
    profile: str = "full"


def _obj(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(key, "is not an object", f"a mapping with keys {', '.join(allowed)}") from None
    if not isinstance(value, Mapping):
        raise ConfigError(key, "is not an object", f"a mapping with keys {', '.join(allowed)}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", "is not a known key", ", ".join(allowed))
    return value


def _int(obj: Mapping[str, Any], key: str, default: int, lo: int, hi: int, prefix: str) -> int:
    value = obj.get(key, default)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{prefix}.{key}", f"{value!r} is out of range", f"an integer {lo}..{hi}")
    return value


def parse_kubernetes_config(raw: Mapping[str, Any], environment: str) -> KubernetesConfig:
    """The ``retail-platform:kubernetes`` object. prod: 3 Elasticsearch nodes, longer retention."""
    obj = _obj(raw, "kubernetes", KUBERNETES_KEYS)
    prod = environment == "prod"
    # Default: the project version. On EKS the deploy job pins the git commit and the digests, and the program
    # refuses to run without them (shop_platform.images.check_deployable).
    tag = obj.get("imageTag", "local" if environment == "local" else DEFAULT_IMAGE_TAG)
    if not isinstance(tag, str) or not _TAG.match(tag) or tag == "latest":
        raise ConfigError("kubernetes.imageTag", f"{tag!r} is not a fixed image tag",
                          "the tag CI pushed (e.g. the git SHA); never 'latest'")
    digests = obj.get("imageDigests", {})
    if not isinstance(digests, Mapping):
        raise ConfigError("kubernetes.imageDigests", "is not an object", "{service: sha256:<64 hex>}")
    for name, digest in digests.items():
        if name not in catalog.by_name():
            raise ConfigError(f"kubernetes.imageDigests.{name}", "is not a catalog service",
                              ", ".join(s.name for s in catalog.SERVICES))
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise ConfigError(f"kubernetes.imageDigests.{name}", f"{digest!r} is not a digest", "sha256:<64 hex>")
    registry = obj.get("imageRegistry")
    if registry is not None:
        if environment == "local":
            raise ConfigError("kubernetes.imageRegistry", "the local stack loads images into its kind nodes",
                              "unset on the local stack")
        registry = parse_registry_host(registry)
    hook = obj.get("alertWebhookUrl")
    if hook is not None and (not isinstance(hook, str) or not hook.startswith("https://")):
        raise ConfigError("kubernetes.alertWebhookUrl", f"{hook!r} is not an https URL",
                          "an https:// webhook, or unset (alerts then stay in Alertmanager)")
    admin = obj.get("adminEmail", "admin@shop.local")
    if not isinstance(admin, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", admin):
        raise ConfigError("kubernetes.adminEmail", f"{admin!r} is not an e-mail address",
                          "the first administrator's login, e.g. ops@example.com")
    nodes = _int(obj, "elasticsearchNodes", 3 if prod else 1, 1, 5, "kubernetes")
    if nodes not in (1, 3, 5) or (prod and nodes < 3):
        raise ConfigError("kubernetes.elasticsearchNodes", f"{nodes} is not allowed",
                          "1 (dev/local) or 3/5 (an odd quorum; prod needs >= 3)")
    return KubernetesConfig(
        image_tag=tag, image_digests=dict(digests), image_registry=registry, alert_webhook_url=hook,
        admin_email=admin,
        log_retention_days=_int(obj, "logRetentionDays", 30 if prod else 7, 1, 3650, "kubernetes"),
        elasticsearch_nodes=nodes,
        elasticsearch_storage_gib=_int(obj, "elasticsearchStorageGib", 100 if prod else 10, 5, 16384, "kubernetes"),
        prometheus_retention_days=_int(obj, "prometheusRetentionDays", 15 if prod else 7, 1, 365, "kubernetes"),
        prometheus_storage_gib=_int(obj, "prometheusStorageGib", 100 if prod else 20, 5, 16384, "kubernetes"))


def parse_local_config(stack: str, raw: Mapping[str, Any]) -> LocalStackConfig:
    """The kind stack: no AWS keys at all; ``kind`` names the cluster, its pod subnet and version."""
    unknown = sorted(set(raw) - set(LOCAL_TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(unknown[0], "is not a known key for the local stack", ", ".join(LOCAL_TOP_LEVEL_KEYS))
    owner = raw.get("owner", "local")
    if not isinstance(owner, str) or not re.fullmatch(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", owner):
        raise ConfigError("owner", f"{owner!r} is not a team name", "lowercase letters, digits, '-'")
    kind = _obj(raw, "kind", LOCAL_KEYS)
    name = kind.get("clusterName", "shop")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", name):
        raise ConfigError("kind.clusterName", f"{name!r} is not a cluster name", "lowercase letters, digits, '-'")
    subnet = kind.get("podSubnet", "10.244.0.0/16")
    try:
        net = ipaddress.IPv4Network(str(subnet), strict=True)
    except ValueError:
        raise ConfigError("kind.podSubnet", f"{subnet!r} is not an IPv4 network", "e.g. 10.244.0.0/16") from None
    if not net.is_private:
        raise ConfigError("kind.podSubnet", f"{subnet} is not private", "an RFC 1918 network")
    version = str(kind.get("kubeVersion", versions.KIND_NODE_IMAGE.split("@")[0].split(":v")[1].rsplit(".", 1)[0]))
    if version not in versions.SUPPORTED_EKS_VERSIONS:
        raise ConfigError("kind.kubeVersion", f"{version!r} is not supported",
                          ", ".join(versions.SUPPORTED_EKS_VERSIONS) + " (the same minors as EKS)")
    profile = kind.get("profile", "full")
    if profile not in KIND_PROFILES:
        raise ConfigError("kind.profile", f"{profile!r} is not a profile",
                          "full (everything) or light (no log pipeline: fits an 8 GB laptop)")
    return LocalStackConfig(stack=stack, owner=owner, cluster_name=name, pod_subnet=str(net), kube_version=version,
                            kubernetes=parse_kubernetes_config(raw, "local"), profile=profile)


def layer_spec_for_local(cfg: LocalStackConfig) -> LayerSpec:
    k = cfg.kubernetes
    return LayerSpec(target="kind", stack=cfg.stack, environment="dev", kube_version=cfg.kube_version,
                     image_tag=k.image_tag, image_repositories={s.name: f"shop/{s.name}" for s in catalog.SERVICES},
                     image_digests=k.image_digests, sizing=SMALL_SIZING, pod_cidr=cfg.pod_subnet,
                     alerts=AlertReceiver(k.alert_webhook_url), admin_email=k.admin_email,
                     log_retention_days=k.log_retention_days,
                     elasticsearch_nodes=k.elasticsearch_nodes, elasticsearch_storage_gib=k.elasticsearch_storage_gib,
                     prometheus_retention_days=k.prometheus_retention_days,
                     prometheus_storage_gib=k.prometheus_storage_gib, logging=cfg.profile == "full")


def layer_spec_for_eks(cfg: StackConfig, k: KubernetesConfig) -> LayerSpec:
    isolated = plan_subnets(cfg.network.cidr, cfg.network.az_count).isolated
    return LayerSpec(target="eks", stack=cfg.stack, environment=cfg.environment, kube_version=cfg.cluster.version,
                     image_tag=k.image_tag, image_digests=k.image_digests, vpc_cidr=cfg.network.cidr,
                     database_cidrs=tuple(isolated), region=cfg.region, alerts=AlertReceiver(k.alert_webhook_url),
                     admin_email=k.admin_email,
                     log_retention_days=k.log_retention_days, elasticsearch_nodes=k.elasticsearch_nodes,
                     elasticsearch_storage_gib=k.elasticsearch_storage_gib,
                     prometheus_retention_days=k.prometheus_retention_days,
                     prometheus_storage_gib=k.prometheus_storage_gib)
