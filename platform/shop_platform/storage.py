"""Encrypted, private S3 buckets and KMS keys: the two building blocks several components share.

``SecureBucket`` encodes FSBP S3.1/S3.8 (public access blocked), S3.5 (TLS only), encryption at rest,
versioning and an expiry, ACLs disabled (bucket-owner-enforced). ``encryption_key`` is a customer-managed
KMS key with rotation on (FSBP KMS.4) and a 30-day deletion window (KMS.3).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from shop_platform import iam
from shop_platform.context import StackContext


def encryption_key(name: str, ctx: StackContext, description: str, *, parent: pulumi.Resource,
                   service_grant: dict[str, Any] | None = None, region: str | None = None,
                   service: str | None = None, retain_on_delete: bool = False) -> aws.kms.Key:
    """A rotating customer-managed key used through IAM, plus one optional service grant (iam.*_grant).

    ``retain_on_delete``: ``pulumi destroy`` leaves the key in the account (for data that outlives the stack,
    e.g. final snapshots encrypted with it; a deleted key makes them unrestorable)."""
    tags = ctx.tags(service) if service else ctx.tags()
    return aws.kms.Key(
        name, description=description, enable_key_rotation=True, deletion_window_in_days=30,
        policy=json.dumps(iam.kms_key_policy(ctx.account_id, partition=ctx.partition, service_grant=service_grant)),
        region=region, tags=tags, opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=retain_on_delete))


@dataclass(frozen=True, slots=True)
class SecureBucketArgs:
    ctx: StackContext
    # ALB access logs only support SSE-S3 (AES256); everything else should use a KMS key.
    sse_algorithm: Literal["AES256", "aws:kms"] = "aws:kms"
    kms_key_arn: pulumi.Input[str] | None = None
    expire_days: int = 365
    # Extra bucket-policy statements, given the bucket ARN (e.g. the ELB log-delivery grant).
    grants: Callable[[str], list[dict[str, Any]]] | None = None

    def __post_init__(self) -> None:
        if self.sse_algorithm == "aws:kms" and self.kms_key_arn is None:
            raise ValueError("SecureBucketArgs: sse_algorithm aws:kms needs kms_key_arn")
        if not 1 <= self.expire_days <= 3653:
            raise ValueError("SecureBucketArgs: expire_days must be 1..3653")


class SecureBucket(pulumi.ComponentResource):
    """A private, encrypted, versioned bucket that refuses plain-HTTP requests."""

    bucket_name: pulumi.Output[str]
    arn: pulumi.Output[str]
    regional_domain_name: pulumi.Output[str]

    def __init__(self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:storage:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.ctx.tags()
        bucket = aws.s3.Bucket(f"{name}-bucket", force_destroy=False, tags=tags, opts=child)
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
        kms = args.sse_algorithm == "aws:kms"
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm=args.sse_algorithm, kms_master_key_id=args.kms_key_arn if kms else None),
                bucket_key_enabled=kms)], opts=child)
        aws.s3.BucketVersioning(f"{name}-versioning", bucket=bucket.id,
                                versioning_configuration={"status": "Enabled"}, opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=bucket.id,
            rules=[{"id": "expire", "status": "Enabled", "filter": {},
                    "expiration": {"days": args.expire_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 30},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7}}], opts=child)
        grants = args.grants

        def policy(arn: str) -> str:
            extra = grants(arn) if grants else []
            return json.dumps(iam.bucket_policy(iam.s3_tls_only(arn), *extra))

        aws.s3.BucketPolicy(f"{name}-policy", bucket=bucket.id, policy=bucket.arn.apply(policy),
                            # A policy put before the public-access block could be judged "public".
                            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]))
        self.bucket_name = bucket.bucket
        self.arn = bucket.arn
        self.regional_domain_name = bucket.bucket_regional_domain_name
        self.register_outputs({"bucket_name": self.bucket_name, "arn": self.arn})
