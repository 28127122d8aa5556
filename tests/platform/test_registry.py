"""Registry component and the registry stack: one hardened ECR repository per catalog service, pulled by the
dev and prod accounts, declared by no app stack."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from shop_platform.config import ConfigError, RegistryConfig, validate
from shop_platform.context import StackContext
from shop_platform.images import PULL_ACTIONS, pull_policy
from shop_platform.registry import Registry, RegistryArgs, lifecycle_policy

from services import catalog
from tools.offline import Recording
from tools.plan import run_plan


def test_every_service_gets_an_immutable_scanned_encrypted_repository(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """FSBP ECR.1/ECR.2: a tag must always mean the same image, and every push is scanned."""
    config = validate(RegistryConfig, {"pullAccountIds": ["111122223333"]})
    rec = run(lambda: Registry("registry", RegistryArgs(ctx=dev_ctx, services=catalog.SERVICES, config=config)))
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


@pytest.mark.parametrize("keep", [2, 7])
def test_too_few_kept_images_is_refused(keep: int) -> None:
    """Keeping fewer than 10 images could expire the image a rollback needs; the component takes the validated
    section, so it keeps exactly the config's bound (it once accepted 5..9)."""
    with pytest.raises(ConfigError, match=r"registry\.keepImages|keepImages.*roll back"):
        validate(RegistryConfig, {"pullAccountIds": ["111122223333"], "keepImages": keep})


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


def test_a_registry_nobody_may_pull_from_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"pullAccountIds: \[\] is not a list of account ids"):
        validate(RegistryConfig, {"pullAccountIds": []})


def test_the_registry_stack_lets_exactly_the_dev_and_prod_accounts_pull() -> None:
    """Pulumi.registry.yaml: every repository carries the same pull-only policy for the two app accounts, and
    nothing in it may push, delete or change policy."""
    rec = run_plan("registry").recording
    repos = rec.of_type("aws:ecr/repository:Repository")
    assert {r.inputs["name"] for r in repos} == {f"shop/{s.name}" for s in catalog.SERVICES}
    policies = rec.of_type("aws:ecr/repositoryPolicy:RepositoryPolicy")
    assert len(policies) == len(repos)
    for policy in policies:
        [statement] = json.loads(policy.inputs["policy"])["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:root"]}
        assert sorted(statement["Action"]) == sorted(PULL_ACTIONS)
    for lifecycle in rec.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy"):  # registry.keepImages: 100
        assert json.loads(lifecycle.inputs["policy"])["rules"][1]["selection"]["countNumber"] == 100
    assert rec.outputs["registry"] == "111122223333.dkr.ecr.eu-west-1.amazonaws.com"  # the mocks' account
    assert rec.of_type("aws:eks/cluster:Cluster") == []


def test_pull_policy_passes_ecr_validation_and_grants_only_pulls() -> None:
    """moto runs ECR's repository-policy validation; the actions are exactly what a node needs to pull."""
    import boto3
    from moto import mock_aws

    doc = pull_policy(("111122223333", "444455556666"))
    assert not any(
        a.startswith(("ecr:Put", "ecr:Delete", "ecr:Set", "ecr:Upload", "ecr:Initiate", "ecr:Complete"))
        for a in doc["Statement"][0]["Action"]
    )
    with mock_aws():
        ecr = boto3.client("ecr", region_name="eu-west-1")
        ecr.create_repository(repositoryName="shop/x", imageTagMutability="IMMUTABLE")
        ecr.set_repository_policy(repositoryName="shop/x", policyText=json.dumps(doc))
        stored = ecr.get_repository_policy(repositoryName="shop/x")["policyText"]
    assert json.loads(stored) == doc
