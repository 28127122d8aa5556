"""The Kubernetes layer's args from a stack's config: ``StackConfig`` (EKS) or ``LocalStackConfig`` (kind) in,
``LayerSpec`` out. The config models and their rules live in ``shop_platform.config``; the ``kubernetes``
section is passed as it is.
"""

from __future__ import annotations

from services import catalog
from shop_platform.config import LocalStackConfig, StackConfig
from shop_platform.k8s.spec import SMALL_SIZING, LayerSpec
from shop_platform.network import plan_subnets


def layer_spec_for_local(cfg: LocalStackConfig) -> LayerSpec:
    return LayerSpec(
        target="kind",
        stack=cfg.stack,
        environment="dev",
        kube_version=cfg.kind.kube_version,
        kubernetes=cfg.kubernetes,
        image_repositories={s.name: f"shop/{s.name}" for s in catalog.SERVICES},
        sizing=SMALL_SIZING,
        pod_cidr=cfg.kind.pod_subnet,
        logging=cfg.kind.profile == "full",
    )


def layer_spec_for_eks(cfg: StackConfig) -> LayerSpec:
    isolated = plan_subnets(cfg.network.cidr, cfg.network.az_count).isolated
    return LayerSpec(
        target="eks",
        stack=cfg.stack,
        environment=cfg.environment,
        kube_version=cfg.cluster.version,
        kubernetes=cfg.kubernetes,
        vpc_cidr=cfg.network.cidr,
        database_cidrs=tuple(isolated),
        region=cfg.region,
    )
