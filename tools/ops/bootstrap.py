"""Create (or confirm) the Pulumi state backend and secrets provider for one AWS account and region.

    .venv/bin/python -m tools.ops.bootstrap --account-id 111122223333 --region eu-west-1

What it makes, each step idempotent (a second run changes nothing and says so):
- a customer-managed KMS key with yearly rotation and an alias (``alias/pulumi-secrets`` by default): the
  stack secrets provider, so ``secure:`` config values and secret outputs are encrypted with it;
- an S3 bucket for the state (``pulumi-state-<account>-<region>`` by default): versioned (a bad ``up`` or a
  corrupted checkpoint can be rolled back), SSE-KMS with that key and a bucket key, all public access
  blocked, ACLs disabled (bucket owner enforced), and a policy refusing any request not over TLS.
It refuses to touch an account other than ``--account-id`` (a wrong profile is the usual accident) and a
bucket name someone else owns. At the end it prints the ``pulumi login`` and ``--secrets-provider`` lines.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

DEFAULT_ALIAS: Final = "alias/pulumi-secrets"
TAGS: Final = {"managed-by": "shop-platform-bootstrap", "purpose": "pulumi-state"}
_ACCOUNT: Final = re.compile(r"^\d{12}$")
_REGION: Final = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ALIAS: Final = re.compile(r"^alias/[a-zA-Z0-9/_-]{1,250}$")


class BootstrapError(RuntimeError):
    """The account is not one this tool may change (wrong account, bucket owned by someone else)."""


@dataclass
class BootstrapResult:
    bucket: str
    region: str
    key_arn: str
    key_alias: str
    changes: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def login_command(self) -> str:
        return f"pulumi login 's3://{self.bucket}?region={self.region}&awssdk=v2'"

    @property
    def secrets_provider(self) -> str:
        return f"awskms://{self.key_alias}?region={self.region}"

    def render(self) -> str:
        lines = [f"  changed: {c}" for c in self.changes] + [f"  ok:      {u}" for u in self.unchanged]
        verdict = (
            f"{len(self.changes)} change(s) made"
            if self.changes
            else "nothing to change: the backend was already bootstrapped"
        )
        return "\n".join(
            [
                f"state bucket s3://{self.bucket} and KMS key {self.key_alias} in {self.region}: {verdict}",
                *lines,
                "",
                "Use them:",
                f"  {self.login_command}",
                f"  pulumi stack init <stack> --secrets-provider '{self.secrets_provider}'",
                f"  (existing stack: pulumi stack change-secrets-provider '{self.secrets_provider}')",
            ]
        )


def default_bucket(account_id: str, region: str) -> str:
    return f"pulumi-state-{account_id}-{region}"


def tls_only_policy(bucket: str) -> dict[str, Any]:
    arn = f"arn:aws:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def ensure_key(kms: Any, alias: str, result_changes: list[str], result_ok: list[str]) -> str:
    """The key behind ``alias`` (created if missing) with rotation on; returns its ARN."""
    try:
        meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
        result_ok.append(f"KMS key {alias} exists ({meta['KeyId']})")
    except ClientError as exc:
        if _code(exc) != "NotFoundException":
            raise
        meta = kms.create_key(
            Description="Pulumi stack secrets provider (shop platform)",
            KeyUsage="ENCRYPT_DECRYPT",
            KeySpec="SYMMETRIC_DEFAULT",
            Tags=[{"TagKey": k, "TagValue": v} for k, v in TAGS.items()],
        )["KeyMetadata"]
        kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        result_changes.append(f"created KMS key {meta['KeyId']} with alias {alias}")
    if meta.get("KeyState") not in (None, "Enabled"):
        raise BootstrapError(f"KMS key {alias} is {meta.get('KeyState')}; enable it or pick another --key-alias")
    if kms.get_key_rotation_status(KeyId=meta["KeyId"]).get("KeyRotationEnabled"):
        result_ok.append("KMS key rotation is on")
    else:
        kms.enable_key_rotation(KeyId=meta["KeyId"])
        result_changes.append("turned KMS key rotation on")
    return str(meta["Arn"])


def ensure_bucket(s3: Any, bucket: str, region: str, key_arn: str, changes: list[str], ok: list[str]) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        ok.append(f"bucket {bucket} exists")
    except ClientError as exc:
        code = _code(exc)
        if code in ("403", "Forbidden", "AccessDenied"):
            raise BootstrapError(
                f"bucket {bucket} exists but this account cannot use it (owned by someone "
                "else?); pass --bucket with another name"
            ) from exc
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        args: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**args)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in TAGS.items()]})
        changes.append(f"created bucket {bucket} in {region}")

    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    try:
        current = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        if _code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        current = {}
    if all(current.get(k) for k in block):
        ok.append("public access blocked")
    else:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
        changes.append("blocked all public access")

    try:
        owner = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]
    except ClientError as exc:
        if _code(exc) != "OwnershipControlsNotFoundError":
            raise
        owner = None
    if owner == "BucketOwnerEnforced":
        ok.append("ACLs disabled (bucket owner enforced)")
    else:
        s3.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        )
        changes.append("disabled ACLs (bucket owner enforced)")

    if s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled":
        ok.append("versioning on")
    else:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        changes.append("turned versioning on")

    wanted_rule = {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
        "BucketKeyEnabled": True,
    }
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as exc:
        if _code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rules = []
    default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
    if default.get("SSEAlgorithm") == "aws:kms" and default.get("KMSMasterKeyID") == key_arn:
        ok.append("SSE-KMS with the secrets key")
    else:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [wanted_rule]})
        changes.append("set default encryption to SSE-KMS with the secrets key")

    wanted_policy = tls_only_policy(bucket)
    try:
        current_policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as exc:
        if _code(exc) != "NoSuchBucketPolicy":
            raise
        current_policy = None
    statements = current_policy.get("Statement", []) if isinstance(current_policy, dict) else []
    if wanted_policy["Statement"][0] in statements:
        ok.append("bucket policy refuses non-TLS requests")
    else:
        merged = {
            "Version": "2012-10-17",
            "Statement": [s for s in statements if s.get("Sid") != "DenyInsecureTransport"]
            + wanted_policy["Statement"],
        }
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(merged))
        changes.append("bucket policy now refuses non-TLS requests")


def bootstrap(
    session: Any, *, account_id: str, region: str, bucket: str | None = None, key_alias: str = DEFAULT_ALIAS
) -> BootstrapResult:
    """Make the backend exist as described in the module docstring; ``session`` is a boto3 Session."""
    actual = session.client("sts", region_name=region).get_caller_identity()["Account"]
    if actual != account_id:
        raise BootstrapError(
            f"credentials are for account {actual}, not {account_id}: refusing to change it "
            "(check AWS_PROFILE / the assumed role)"
        )
    name = bucket or default_bucket(account_id, region)
    changes: list[str] = []
    ok: list[str] = []
    key_arn = ensure_key(session.client("kms", region_name=region), key_alias, changes, ok)
    ensure_bucket(session.client("s3", region_name=region), name, region, key_arn, changes, ok)
    return BootstrapResult(
        bucket=name, region=region, key_arn=key_arn, key_alias=key_alias, changes=changes, unchanged=ok
    )


def _pattern(regex: re.Pattern[str], what: str) -> Any:
    def parse(value: str) -> str:
        if not regex.match(value):
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ops.bootstrap",
        description="Create the Pulumi state bucket and KMS secrets key for an account (idempotent).",
    )
    parser.add_argument(
        "--account-id",
        required=True,
        type=_pattern(_ACCOUNT, "a 12-digit AWS account id"),
        help="the account the credentials must belong to",
    )
    parser.add_argument("--region", required=True, type=_pattern(_REGION, "an AWS region such as eu-west-1"))
    parser.add_argument(
        "--bucket",
        type=_pattern(_BUCKET, "a valid S3 bucket name"),
        help="state bucket name (default: pulumi-state-<account>-<region>)",
    )
    parser.add_argument(
        "--key-alias",
        default=DEFAULT_ALIAS,
        type=_pattern(_ALIAS, "a KMS alias (alias/...)"),
        help=f"KMS alias of the secrets key (default: {DEFAULT_ALIAS})",
    )
    parser.add_argument("--profile", help="AWS profile to use (default: the environment's credentials)")
    return parser


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    args = build_parser().parse_args(argv)
    if session is None:
        import boto3

        session = boto3.Session(profile_name=args.profile, region_name=args.region)
    try:
        result = bootstrap(
            session, account_id=args.account_id, region=args.region, bucket=args.bucket, key_alias=args.key_alias
        )
    except BootstrapError as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 1
    print(result.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
