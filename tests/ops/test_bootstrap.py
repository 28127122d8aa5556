"""Bootstrap against moto: the backend it creates has every property the module promises, a second run changes
nothing and says so, drift is repaired one property at a time, and it refuses accounts it was not pointed at."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tools.ops import bootstrap as bs

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account
BUCKET = f"pulumi-state-{ACCOUNT}-{REGION}"


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def run(session: Any, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = bs.main(["--account-id", ACCOUNT, "--region", REGION, *extra], session=session)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_first_run_creates_a_private_versioned_kms_encrypted_tls_only_backend(
    session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(session, capsys)
    assert code == 0, out
    s3, kms = session.client("s3"), session.client("kms")
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    key = kms.describe_key(KeyId=bs.DEFAULT_ALIAS)["KeyMetadata"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]}
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    statement = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert f"pulumi login 's3://{BUCKET}?region={REGION}&awssdk=v2'" in out
    assert f"--secrets-provider 'awskms://alias/pulumi-secrets?region={REGION}'" in out
    assert "change(s) made" in out


def test_second_run_changes_nothing_and_says_so(session: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(session, capsys)
    before = session.client("kms").list_keys()["Keys"]
    code, out = run(session, capsys)
    assert code == 0
    assert "nothing to change: the backend was already bootstrapped" in out
    assert "changed:" not in out
    assert session.client("kms").list_keys()["Keys"] == before  # no second key


def test_drift_is_repaired_one_property_at_a_time(session: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Someone suspends versioning and removes the TLS-only policy: the next run restores exactly those."""
    run(session, capsys)
    s3 = session.client("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_bucket_policy(Bucket=BUCKET)
    result = bs.bootstrap(session, account_id=ACCOUNT, region=REGION)
    assert result.changes == ["turned versioning on", "bucket policy now refuses non-TLS requests"]
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"


def test_existing_bucket_policy_statements_are_kept(session: Any) -> None:
    session.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    other = {
        "Sid": "AuditRead",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
    }
    session.client("s3").put_bucket_policy(
        Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [other]})
    )
    bs.bootstrap(session, account_id=ACCOUNT, region=REGION)
    sids = [s["Sid"] for s in json.loads(session.client("s3").get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"]]
    assert sids == ["AuditRead", "DenyInsecureTransport"]


def test_rotation_turned_off_on_an_existing_key_is_turned_back_on(session: Any) -> None:
    bs.bootstrap(session, account_id=ACCOUNT, region=REGION)
    kms = session.client("kms")
    key_id = kms.describe_key(KeyId=bs.DEFAULT_ALIAS)["KeyMetadata"]["KeyId"]
    kms.disable_key_rotation(KeyId=key_id)
    assert bs.bootstrap(session, account_id=ACCOUNT, region=REGION).changes == ["turned KMS key rotation on"]


def test_refuses_another_account(session: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = bs.main(["--account-id", "999999999999", "--region", REGION], session=session)
    err = capsys.readouterr().err
    assert code == 1
    assert "credentials are for account 123456789012, not 999999999999" in err
    assert session.client("s3").list_buckets()["Buckets"] == []


def test_refuses_a_bucket_name_owned_by_someone_else(session: Any) -> None:
    class Forbidden:
        def __getattr__(self, name: str) -> Any:
            return getattr(session.client("s3"), name)

        def head_bucket(self, **_: Any) -> None:
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")

    with pytest.raises(bs.BootstrapError, match="owned by someone else"):
        bs.ensure_bucket(Forbidden(), "taken-name", REGION, "arn:aws:kms:eu-west-1:1:key/k", [], [])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--region", REGION], "the following arguments are required: --account-id"),
        (["--account-id", "12345", "--region", REGION], "'12345' is not a 12-digit AWS account id"),
        (["--account-id", ACCOUNT, "--region", "Ireland"], "'Ireland' is not an AWS region"),
        (["--account-id", ACCOUNT, "--region", REGION, "--bucket", "Bad_Name"], "is not a valid S3 bucket name"),
        (["--account-id", ACCOUNT, "--region", REGION, "--key-alias", "pulumi"], "is not a KMS alias"),
    ],
)
def test_bad_flags_are_clear_argparse_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bs.main(argv, session=object())
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
