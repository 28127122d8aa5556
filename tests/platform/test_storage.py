"""Storage building blocks: SecureBucket and encryption_key."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from shop_platform.context import StackContext
from shop_platform.storage import SecureBucket, SecureBucketArgs, encryption_key

from tools.offline import Recording


def test_bucket_is_private_versioned_expiring_and_tls_only(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """FSBP S3.1/S3.5/S3.8 plus versioning and a lifecycle: a bucket is never public, never plain HTTP, and
    never grows forever."""
    rec = run(lambda: SecureBucket("logs", SecureBucketArgs(ctx=dev_ctx, sse_algorithm="AES256", expire_days=90)))
    block = rec.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    assert rec.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"
    }
    assert rec.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"] == {
        "status": "Enabled"
    }
    rule = rec.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"][0]
    assert rule["expiration"]["days"] == 90
    policy = rec.one("aws:s3/bucketPolicy:BucketPolicy")
    assert json.loads(policy.inputs["policy"])["Statement"][0]["Sid"] == "DenyInsecureTransport"
    assert rec.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").urn in policy.deps
    assert rec.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is True  # dev: destroy empties it


def test_kms_encryption_uses_the_given_key_with_bucket_keys(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """SSE-KMS with a customer key (and S3 bucket keys to cut KMS calls) unless a consumer needs SSE-S3."""
    rec = run(lambda: SecureBucket("data", SecureBucketArgs(ctx=dev_ctx, kms_key_arn="arn:aws:kms:k")))
    rule = rec.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs[
        "rules"
    ][0]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:aws:kms:k"}
    assert rule["bucketKeyEnabled"] is True


def test_kms_without_a_key_and_silly_expiry_are_refused(dev_ctx: StackContext) -> None:
    """aws:kms with no key would fall back to the AWS-managed key silently; expiry must be a real period."""
    with pytest.raises(ValueError, match="kms_key_arn"):
        SecureBucketArgs(ctx=dev_ctx, sse_algorithm="aws:kms")
    with pytest.raises(ValueError, match="expire_days"):
        SecureBucketArgs(ctx=dev_ctx, sse_algorithm="AES256", expire_days=0)


def test_keys_rotate_and_cannot_be_deleted_at_once(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """FSBP KMS.3/KMS.4: a deleted key makes everything it encrypted unreadable; 30 days leaves time to cancel."""
    import pulumi

    def program() -> None:
        parent = pulumi.ComponentResource("shop:test:Parent", "p")
        encryption_key("p-key", dev_ctx, "test", parent=parent)

    key = run(program).one("aws:kms/key:Key").inputs
    assert key["enableKeyRotation"] is True
    assert key["deletionWindowInDays"] == 30
    statements = json.loads(key["policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["AccountAdministersThroughIam"]
