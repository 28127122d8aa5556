"""Storage rules: S3 buckets encrypted, private and TLS-only; KMS keys rotating; ECR repositories scanning
on push with immutable tags. FSBP S3/KMS/ECR controls in brackets.

Bucket settings are separate resources in pulumi-aws v7 (``BucketServerSideEncryptionConfiguration``,
``BucketPublicAccessBlock``, ``BucketPolicy``), so the bucket-level checks are stack rules that look for
the companion resource pointing at each bucket.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pulumi_policy import PolicyResource

from retail_policies._support import (
    Context,
    Rule,
    Unknown,
    get,
    items,
    known,
    label,
    links,
    of_type,
    resource_policy,
    stack_policy,
    truthy,
)

BUCKETS: Final = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
SSE: Final = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
PUBLIC_ACCESS_BLOCK: Final = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY: Final = "aws:s3/bucketPolicy:BucketPolicy"
KMS_KEY: Final = "aws:kms/key:Key"
ECR_REPOSITORY: Final = "aws:ecr/repository:Repository"
BLOCK_FLAGS: Final = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS: Final = ("aws:kms", "aws:kms:dsse", "AES256")
S3_DOCS: Final = "https://docs.aws.amazon.com/securityhub/latest/userguide/s3-controls.html"


def check_public_access_block(props: Any, ctx: Context) -> Iterable[str]:
    off = [flag for flag in BLOCK_FLAGS if not truthy(get(props, flag))]
    if off:
        yield (
            f"{off} not true: the bucket could be made public by an ACL or policy; set all four "
            "(block_public_acls, block_public_policy, ignore_public_acls, restrict_public_buckets) [S3.8]"
        )


def _encrypted(sse: PolicyResource) -> bool:
    for rule in items(known(sse.props, "rules")):
        algorithm = known(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
        if algorithm in SSE_ALGORITHMS or isinstance(algorithm, Unknown):
            return True
    return False


def check_buckets_encrypted(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    buckets = of_type(resources, *BUCKETS)
    configs = of_type(resources, *SSE)
    for bucket in buckets:
        inline = known(bucket.props, "serverSideEncryptionConfiguration")  # the pre-v7 inline form
        if isinstance(inline, Mapping) and known(inline, "rule", "applyServerSideEncryptionByDefault", "sseAlgorithm"):
            continue
        mine = [c for c in configs if bucket in links(c, "bucket", buckets)]
        if not mine:
            yield (
                f"{label(bucket)} has no encryption configuration: add "
                "aws.s3.BucketServerSideEncryptionConfiguration (aws:kms with a customer-managed key, or "
                "AES256 where the writer needs it) [S3.17]",
                bucket.urn,
            )
        elif not any(_encrypted(c) for c in mine):
            yield (
                f"{label(bucket)}'s encryption configuration names no algorithm in {list(SSE_ALGORITHMS)}",
                bucket.urn,
            )


def check_buckets_blocked(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    buckets = of_type(resources, *BUCKETS)
    blocks = of_type(resources, PUBLIC_ACCESS_BLOCK)
    for bucket in buckets:
        if not any(bucket in links(b, "bucket", buckets) for b in blocks):
            yield (
                f"{label(bucket)} has no public access block: add aws.s3.BucketPublicAccessBlock with all "
                "four flags true [S3.8]",
                bucket.urn,
            )


def _denies_plain_http(document: Any) -> bool | None:
    if isinstance(document, Unknown):
        return None
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except ValueError:
        return False
    statements = parsed.get("Statement", []) if isinstance(parsed, Mapping) else []
    for st in statements if isinstance(statements, list) else [statements]:
        if not isinstance(st, Mapping) or st.get("Effect") != "Deny":
            continue
        cond = st.get("Condition", {}).get("Bool", {}) if isinstance(st.get("Condition"), Mapping) else {}
        if str(cond.get("aws:SecureTransport", "")).lower() == "false":
            return True
    return False


def check_buckets_tls_only(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    buckets = of_type(resources, *BUCKETS)
    policies = of_type(resources, BUCKET_POLICY)
    for bucket in buckets:
        mine = [p for p in policies if bucket in links(p, "bucket", buckets)]
        if not any(_denies_plain_http(known(p.props, "policy")) is not False for p in mine):
            yield (
                f"{label(bucket)} accepts plain-HTTP requests: add a bucket policy statement denying s3:* when "
                "aws:SecureTransport is false [S3.5]",
                bucket.urn,
            )


def check_key_rotation(props: Any, ctx: Context) -> Iterable[str]:
    spec = get(props, "customerMasterKeySpec", default=get(props, "keySpec", default="SYMMETRIC_DEFAULT"))
    if spec != "SYMMETRIC_DEFAULT":
        return  # AWS rotates only symmetric encryption keys
    if not truthy(get(props, "enableKeyRotation")):
        state = "false" if "enableKeyRotation" in props else "not set (off by default)"
        yield f"enableKeyRotation is {state}; set enable_key_rotation=True (yearly automatic rotation) [KMS.4]"


def check_ecr_scanning(props: Any, ctx: Context) -> Iterable[str]:
    if not truthy(get(props, "imageScanningConfiguration", "scanOnPush")):
        yield (
            "imageScanningConfiguration.scanOnPush is not true: pushed images are never scanned for CVEs; set "
            "image_scanning_configuration={scan_on_push: True} [ECR.1]"
        )


def check_ecr_immutable(props: Any, ctx: Context) -> Iterable[str]:
    mutability = get(props, "imageTagMutability", default="MUTABLE")  # AWS default: MUTABLE
    if not str(mutability).startswith("IMMUTABLE"):
        yield (
            f"imageTagMutability is {mutability}: a pushed tag can be overwritten, so a deployed tag may "
            "silently change; set image_tag_mutability='IMMUTABLE' and deploy by digest [ECR.2]"
        )


POLICIES: Final[list[Rule]] = [
    stack_policy(
        "s3-bucket-encrypted",
        "Every S3 bucket has default encryption configured [S3.17]",
        check_buckets_encrypted,
        remediation="aws.s3.BucketServerSideEncryptionConfiguration per bucket",
        url=S3_DOCS,
    ),
    resource_policy(
        "s3-public-access-block-complete",
        "S3 public access blocks set all four flags [S3.8]",
        (PUBLIC_ACCESS_BLOCK,),
        check_public_access_block,
        remediation="all four public-access flags True",
        url=S3_DOCS,
    ),
    stack_policy(
        "s3-bucket-public-access-blocked",
        "Every S3 bucket has a public access block [S3.8]",
        check_buckets_blocked,
        remediation="aws.s3.BucketPublicAccessBlock per bucket",
        url=S3_DOCS,
    ),
    stack_policy(
        "s3-bucket-tls-only",
        "Every S3 bucket's policy refuses plain HTTP [S3.5]",
        check_buckets_tls_only,
        remediation="Deny s3:* when aws:SecureTransport is false",
        url=S3_DOCS,
    ),
    resource_policy(
        "kms-key-rotation",
        "Customer-managed symmetric KMS keys rotate [KMS.4]",
        (KMS_KEY,),
        check_key_rotation,
        remediation="enable_key_rotation=True",
        url="https://docs.aws.amazon.com/securityhub/latest/userguide/kms-controls.html",
    ),
    resource_policy(
        "ecr-scan-on-push",
        "ECR repositories scan images on push [ECR.1]",
        (ECR_REPOSITORY,),
        check_ecr_scanning,
        remediation="image_scanning_configuration={scan_on_push: True}",
        url="https://docs.aws.amazon.com/securityhub/latest/userguide/ecr-controls.html",
    ),
    resource_policy(
        "ecr-immutable-tags",
        "ECR repositories have immutable tags [ECR.2]",
        (ECR_REPOSITORY,),
        check_ecr_immutable,
        remediation="image_tag_mutability='IMMUTABLE'",
        url="https://docs.aws.amazon.com/securityhub/latest/userguide/ecr-controls.html",
    ),
]
