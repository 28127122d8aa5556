"""IAM roles for Kubernetes service accounts (IRSA): one role, one service account, least privilege."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from shop_platform import iam
from shop_platform.context import StackContext
from shop_platform.tags import PLATFORM_SERVICE


def service_account_role(
    name: str,
    ctx: StackContext,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    namespace: str,
    service_account: str,
    parent: pulumi.Resource,
    inline_policy: pulumi.Input[str] | None = None,
    managed_policy_arns: tuple[str, ...] = (),
    service: str = PLATFORM_SERVICE,
) -> aws.iam.Role:
    """A role only ``namespace/service_account`` can assume, with one inline policy and/or managed ones."""
    child = pulumi.ResourceOptions(parent=parent)
    trust = pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
        lambda v: json.dumps(iam.irsa_trust(v[0], v[1], namespace, service_account))
    )
    role = aws.iam.Role(
        name,
        assume_role_policy=trust,
        description=f"IRSA {namespace}/{service_account}",
        tags=ctx.tags(service),
        opts=child,
    )
    if inline_policy is not None:
        aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=inline_policy, opts=child)
    for i, arn in enumerate(managed_policy_arns):
        aws.iam.RolePolicyAttachment(f"{name}-managed-{i}", role=role.name, policy_arn=arn, opts=child)
    return role
