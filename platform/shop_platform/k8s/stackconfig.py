"""The Kubernetes layer's args from a stack's config: ``StackConfig`` (EKS) or ``LocalStackConfig`` (kind) in,
``LayerSpec`` out. The config models and their rules live in ``shop_platform.config``.
"""

from __future__ import annotations

from services import catalog
from shop_platform.config import LocalStackConfig, StackConfig
from shop_platform.k8s.spec import SMALL_SIZING, AlertReceiver, LayerSpec
from shop_platform.network import plan_subnets


def layer_spec_for_local(cfg: LocalStackConfig) -> LayerSpec:
    k = cfg.kubernetes
    return LayerSpec(target="kind", stack=cfg.stack, environment="dev", kube_version=cfg.kind.kube_version,
                     image_tag=k.image_tag, image_repositories={s.name: f"shop/{s.name}" for s in catalog.SERVICES},
                     image_digests=k.image_digests, sizing=SMALL_SIZING, pod_cidr=cfg.kind.pod_subnet,
                     alerts=AlertReceiver(k.alert_webhook_url), admin_email=k.admin_email,
                     log_retention_days=k.log_retention_days,
                     elasticsearch_nodes=k.elasticsearch_nodes, elasticsearch_storage_gib=k.elasticsearch_storage_gib,
                     prometheus_retention_days=k.prometheus_retention_days,
                     prometheus_storage_gib=k.prometheus_storage_gib, logging=cfg.kind.profile == "full")


def layer_spec_for_eks(cfg: StackConfig) -> LayerSpec:
    k = cfg.kubernetes
    isolated = plan_subnets(cfg.network.cidr, cfg.network.az_count).isolated
    return LayerSpec(target="eks", stack=cfg.stack, environment=cfg.environment, kube_version=cfg.cluster.version,
                     image_tag=k.image_tag, image_digests=k.image_digests, vpc_cidr=cfg.network.cidr,
                     database_cidrs=tuple(isolated), region=cfg.region, alerts=AlertReceiver(k.alert_webhook_url),
                     admin_email=k.admin_email,
                     log_retention_days=k.log_retention_days, elasticsearch_nodes=k.elasticsearch_nodes,
                     elasticsearch_storage_gib=k.elasticsearch_storage_gib,
                     prometheus_retention_days=k.prometheus_retention_days,
                     prometheus_storage_gib=k.prometheus_storage_gib)
