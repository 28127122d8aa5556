"""The registry composition: the shared ECR repositories every app stack pulls from (``Pulumi.registry.yaml``).

Deployed once per images account before the first image is pushed, and again when the catalog gains a
service or the pulling accounts change (platform/README.md, "Images: from an empty account to prod").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi_aws as aws_sdk
from shop_platform.config import RegistryStackConfig
from shop_platform.context import StackContext
from shop_platform.registry import Registry, RegistryArgs
from shop_platform.tags import Tagger

from services import catalog


def build(cfg: Any) -> Mapping[str, Any]:
    """Declare the shared registry; its ``registry`` output is every app stack's ``kubernetes.imageRegistry``."""
    if not isinstance(cfg, RegistryStackConfig):
        raise TypeError(f"the registry composition needs a RegistryStackConfig, got {type(cfg).__name__}")
    identity = aws_sdk.get_caller_identity()
    ctx = StackContext(
        account_id=identity.account_id,
        region=cfg.region,
        prod=False,
        tags=Tagger(stack=cfg.stack, owner=cfg.owner, environment=cfg.environment),
    )
    registry = Registry("registry", RegistryArgs(ctx=ctx, services=catalog.SERVICES, config=cfg.registry))
    return {
        "registry": f"{identity.account_id}.dkr.ecr.{cfg.region}.amazonaws.com",
        "repositoryUrls": registry.repository_urls,
        "pullAccountIds": list(cfg.registry.pull_account_ids),
    }


__all__ = ["build"]
