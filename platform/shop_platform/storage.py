"""Encrypted, private S3 buckets and KMS keys: the two building blocks several components share.

``SecureBucket`` encodes FSBP S3.1/S3.8 (public access blocked), S3.5 (TLS only), encryption at rest,
versioning and an expiry, ACLs disabled (bucket-owner-enforced), server access logging into the stack's
access-log bucket (S3.9). On ``pulumi destroy`` a dev bucket is emptied (``force_destroy``: its logs and
versions are disposable) and deleted; a prod bucket is left in the account (``retain_on_delete``): its logs
are audit evidence and expire by their lifecycle. ``encryption_key`` is a customer-managed KMS key with
rotation on (FSBP KMS.4) and a 30-day deletion window (KMS.3).
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


def encryption_key(
    name: str,
    ctx: StackContext,
    description: str,
    *,
    parent: pulumi.Resource,
    service_grant: dict[str, Any] | None = None,
    region: str | None = None,
    service: str | None = None,
    retain_on_delete: bool = False,
) -> aws.kms.Key:
    """A rotating customer-managed key used through IAM, plus one optional service grant (iam.*_grant).

    ``retain_on_delete``: ``pulumi destroy`` leaves the key in the account (for data that outlives the stack,
    e.g. final snapshots encrypted with it; a deleted key makes them unrestorable)."""
    tags = ctx.tags(service) if service else ctx.tags()
    return aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=json.dumps(iam.kms_key_policy(ctx.account_id, partition=ctx.partition, service_grant=service_grant)),
        region=region,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=retain_on_delete),
    )


@dataclass(frozen=True, slots=True)
class SecureBucketArgs:
    ctx: StackContext
    # ALB access logs only support SSE-S3 (AES256); everything else should use a KMS key.
    sse_algorithm: Literal["AES256", "aws:kms"] = "aws:kms"
    kms_key_arn: pulumi.Input[str] | None = None
    expire_days: int = 365
    # Extra bucket-policy statements, given the bucket ARN and ``grant_context`` resolved (e.g. the ELB
    # log-delivery grant; CloudFront's read grant scoped to one distribution's ARN).
    grants: Callable[[str, str], list[dict[str, Any]]] | None = None
    grant_context: pulumi.Input[str] = ""
    # Server access logs go to this bucket (S3.9); the access-log bucket itself sets receives_access_logs.
    access_log_bucket: pulumi.Input[str] | None = None
    receives_access_logs: bool = False

    def __post_init__(self) -> None:
        if self.sse_algorithm == "aws:kms" and self.kms_key_arn is None:
            raise ValueError("SecureBucketArgs: sse_algorithm aws:kms needs kms_key_arn")
        if not 1 <= self.expire_days <= 3653:
            raise ValueError("SecureBucketArgs: expire_days must be 1..3653")
        if self.receives_access_logs and self.sse_algorithm != "AES256":
            raise ValueError("SecureBucketArgs: an access-log target must use SSE-S3 (S3 log delivery)")
        if self.receives_access_logs and self.access_log_bucket is not None:
            raise ValueError("SecureBucketArgs: the access-log bucket must not log into a bucket (loops)")


class SecureBucket(pulumi.ComponentResource):
    """A private, encrypted, versioned bucket that refuses plain-HTTP requests."""

    bucket_name: pulumi.Output[str]
    arn: pulumi.Output[str]
    regional_domain_name: pulumi.Output[str]
    # Objects written by Pulumi must wait for it: an object put before versioning is on keeps a "null"
    # version that the object's own delete leaves behind.
    versioning: aws.s3.BucketVersioning

    def __init__(self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:storage:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.ctx.tags()
        prod = args.ctx.prod
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            force_destroy=not prod,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=prod),
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
        kms = args.sse_algorithm == "aws:kms"
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm=args.sse_algorithm, kms_master_key_id=args.kms_key_arn if kms else None
                    ),
                    bucket_key_enabled=kms,
                )
            ],
            opts=child,
        )
        self.versioning = aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-access-logging",
                bucket=bucket.id,
                target_bucket=args.access_log_bucket,
                target_prefix=f"{name}/",
                opts=child,
            )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": args.expire_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 30},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=child,
        )
        grants, account, partition = args.grants, args.ctx.account_id, args.ctx.partition
        logs_in = args.receives_access_logs

        def policy(v: list[str]) -> str:
            arn, context = v
            extra = grants(arn, context) if grants else []
            delivery = [iam.s3_access_log_delivery(arn, account, partition)] if logs_in else []
            return json.dumps(iam.bucket_policy(iam.s3_tls_only(arn), *delivery, *extra))

        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, args.grant_context).apply(policy),
            # A policy put before the public-access block could be judged "public".
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self.bucket_name = bucket.bucket
        self.arn = bucket.arn
        self.regional_domain_name = bucket.bucket_regional_domain_name
        self.register_outputs({"bucket_name": self.bucket_name, "arn": self.arn})
