"""Registry component: one hardened ECR repository per catalog service."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from shop_platform.context import StackContext
from shop_platform.offline import Recording
from shop_platform.registry import Registry, RegistryArgs, lifecycle_policy

from services import catalog


def test_every_service_gets_an_immutable_scanned_encrypted_repository(run: Callable[..., Recording],
                                                                      dev_ctx: StackContext) -> None:
    """FSBP ECR.1/ECR.2: a tag must always mean the same image, and every push is scanned."""
    rec = run(lambda: Registry("registry", RegistryArgs(ctx=dev_ctx, services=catalog.SERVICES)))
    repos = rec.of_type("aws:ecr/repository:Repository")
    assert {r.inputs["name"] for r in repos} == {f"shop/{s.name}" for s in catalog.SERVICES}
    for repo in repos:
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
        assert repo.inputs["forceDelete"] is False
    assert len(rec.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")) == len(repos)


def test_lifecycle_expires_untagged_and_keeps_recent_images() -> None:
    """FSBP ECR.3; keeping the newest N tagged images keeps rollbacks possible."""
    rules = lifecycle_policy(keep_tagged=30, untagged_days=7)["rules"]
    assert rules[0]["selection"]["tagStatus"] == "untagged"
    assert rules[1]["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 30}
    assert [r["rulePriority"] for r in rules] == [1, 2]
    json.dumps(rules)


def test_too_few_kept_images_is_refused(dev_ctx: StackContext) -> None:
    """Keeping fewer than 5 images would expire the image a rollback needs."""
    with pytest.raises(ValueError, match="rollbacks"):
        RegistryArgs(ctx=dev_ctx, services=catalog.SERVICES, keep_tagged=2)


def test_lifecycle_policy_passes_ecr_validation() -> None:
    """The policy is raw JSON to Pulumi; moto runs ECR's lifecycle-policy validation on it."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        ecr = boto3.client("ecr", region_name="eu-west-1")
        ecr.create_repository(repositoryName="shop/x", imageTagMutability="IMMUTABLE")
        ecr.put_lifecycle_policy(repositoryName="shop/x", lifecyclePolicyText=json.dumps(lifecycle_policy()))
        stored = ecr.get_lifecycle_policy(repositoryName="shop/x")["lifecyclePolicyText"]
    assert json.loads(stored) == lifecycle_policy()
