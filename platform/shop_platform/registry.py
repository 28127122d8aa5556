"""Registry: one ECR repository per catalog service, shared by every app stack (the ``registry`` stack).

Scan on push (FSBP ECR.1), immutable tags (ECR.2: a deployed tag always means the same image), KMS
encryption, a lifecycle policy (ECR.3) so untagged layers and old builds do not pile up, and a repository
policy letting the dev and prod accounts pull (``shop_platform.images.pull_policy``). App stacks never
declare repositories: the registry exists before the first push (platform/README.md, "Images").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from services.catalog import Service
from shop_platform.config import RegistryConfig
from shop_platform.context import StackContext
from shop_platform.images import pull_policy, repository_name


def lifecycle_policy(keep_tagged: int = 30, untagged_days: int = 7) -> dict[str, Any]:
    """Expire untagged images after ``untagged_days``; keep the newest ``keep_tagged`` tagged images."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"drop untagged images after {untagged_days} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"keep the newest {keep_tagged} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep_tagged},
                "action": {"type": "expire"},
            },
        ]
    }


@dataclass(frozen=True, slots=True)
class RegistryArgs:
    ctx: StackContext
    services: tuple[Service, ...]
    # The registry stack's validated ``registry`` section (shop_platform.config.RegistryConfig): the accounts
    # whose nodes pull (at least one) and how many images to keep (enough for rollbacks) are checked there.
    config: RegistryConfig

    def __post_init__(self) -> None:
        if not self.services:
            raise ValueError("RegistryArgs: no services")


class Registry(pulumi.ComponentResource):
    """ECR repositories with a cross-account pull policy; exposes ``repository_urls`` by service name."""

    repository_urls: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:registry:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository_urls = {}
        for svc in args.services:
            repo = aws.ecr.Repository(
                f"{name}-{svc.name}",
                name=repository_name(svc.name),
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS"}],
                # Deleting a repository with images must be a deliberate act, not a side effect of destroy.
                force_delete=False,
                tags=args.ctx.tags(svc.name),
                opts=child,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{svc.name}-lifecycle",
                repository=repo.name,
                policy=json.dumps(lifecycle_policy(args.config.keep_images)),
                opts=child,
            )
            aws.ecr.RepositoryPolicy(
                f"{name}-{svc.name}-pull",
                repository=repo.name,
                policy=json.dumps(pull_policy(args.config.pull_account_ids, args.ctx.partition)),
                opts=child,
            )
            self.repository_urls[svc.name] = repo.repository_url
        self.register_outputs({"repository_urls": self.repository_urls})
