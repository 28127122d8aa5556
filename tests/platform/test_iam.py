"""IAM and KMS policy builders (pure): least privilege is checked on the documents themselves."""

from __future__ import annotations

import json

from shop_platform import iam

from tools.offline import Recording
from tools.plan import PlanResult

ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"
PROVIDER = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"


def test_irsa_trust_pins_both_subject_and_audience() -> None:
    """Without the `sub` condition every pod in the cluster could assume the role."""
    doc = iam.irsa_trust(PROVIDER, ISSUER, "shop", "orders")
    cond = doc["Statement"][0]["Condition"]["StringEquals"]
    host = ISSUER.removeprefix("https://")
    assert cond[f"{host}:sub"] == "system:serviceaccount:shop:orders"
    assert cond[f"{host}:aud"] == "sts.amazonaws.com"
    assert doc["Statement"][0]["Principal"] == {"Federated": PROVIDER}


def test_secret_reader_names_one_secret_and_decrypts_only_via_secrets_manager() -> None:
    """A service must read only its own database credentials; kms:Decrypt without ViaService would let the
    role decrypt anything else encrypted with that key."""
    doc = iam.secret_reader("arn:secret:orders", "arn:key:orders", "eu-west-1")
    resources = [s["Resource"] for s in doc["Statement"]]
    assert resources == ["arn:secret:orders", "arn:key:orders"]
    assert (
        doc["Statement"][1]["Condition"]["StringEquals"]["kms:ViaService"] == "secretsmanager.eu-west-1.amazonaws.com"
    )


def test_cluster_autoscaler_may_only_resize_this_clusters_groups() -> None:
    """An unscoped SetDesiredCapacity would let the autoscaler (or whoever holds its token) resize any ASG."""
    doc = iam.cluster_autoscaler("shop-dev")
    scale = next(s for s in doc["Statement"] if s["Sid"] == "ScaleOwnNodeGroups")
    assert scale["Condition"]["StringEquals"] == {"aws:ResourceTag/k8s.io/cluster-autoscaler/shop-dev": "owned"}


def test_load_balancer_controller_only_registers_targets_on_one_target_group() -> None:
    """With TargetGroupBinding the controller never needs to create load balancers or edit security groups."""
    doc = iam.target_group_binder("arn:tg")
    writes = [s for s in doc["Statement"] if s["Resource"] != "*"]
    assert writes == [
        {
            "Sid": "RegisterTargets",
            "Effect": "Allow",
            "Resource": "arn:tg",
            "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
        }
    ]
    read_only = next(s for s in doc["Statement"] if s["Resource"] == "*")
    assert all(":Describe" in a for a in read_only["Action"])


def test_logs_may_use_a_key_only_for_this_accounts_log_groups() -> None:
    """The encryption-context condition is what CloudWatch Logs documents: without it any account's log group
    in the region could be encrypted (and read back) with our key."""
    doc = iam.kms_key_policy("111122223333", service_grant=iam.logs_key_grant("111122223333", "eu-west-1"))
    grant = doc["Statement"][1]
    assert grant["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert grant["Condition"]["ArnLike"] == {
        "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:111122223333:log-group:*"
    }
    assert "kms:*" not in grant["Action"]


def test_only_this_accounts_alarms_may_publish_to_the_alert_topic() -> None:
    """CloudWatch alarms publish as a service principal; the topic policy narrows it to our alarms."""
    doc = iam.alarm_topic_policy("arn:aws:sns:us-east-1:111122223333:t", "111122223333", "us-east-1")
    alarms = next(s for s in doc["Statement"] if s["Sid"] == "CloudWatchAlarmsPublish")
    assert alarms["Condition"]["ArnLike"]["aws:SourceArn"] == "arn:aws:cloudwatch:us-east-1:111122223333:alarm:*"
    assert iam.alarm_topic_key_grant("111122223333")["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_waf_log_delivery_is_limited_to_our_account() -> None:
    """Vended-log delivery writes on behalf of any account; SourceAccount keeps it to ours."""
    doc = iam.log_delivery_policy(
        "arn:aws:logs:eu-west-1:111122223333:log-group:aws-waf-logs-x", "111122223333", "eu-west-1"
    )
    stmt = doc["Statement"][0]
    assert stmt["Resource"].endswith("aws-waf-logs-x:*")
    assert stmt["Condition"]["StringEquals"] == {"aws:SourceAccount": "111122223333"}


def test_s3_policy_denies_plain_http() -> None:
    """FSBP S3.5: a bucket must refuse requests that are not over TLS."""
    stmt = iam.s3_tls_only("arn:aws:s3:::b")
    assert stmt["Effect"] == "Deny"
    assert stmt["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def _iam_documents(rec: Recording) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    policies = [(r.name, r.inputs["policy"]) for r in rec.of_type("aws:iam/rolePolicy:RolePolicy")]
    trusts = [(r.name, r.inputs["assumeRolePolicy"]) for r in rec.of_type("aws:iam/role:Role")]
    return policies, trusts


def test_every_declared_iam_document_passes_iam_grammar_checks(dev_plan: PlanResult, prod_plan: PlanResult) -> None:
    """The mocks accept any string as a policy; IAM rejects malformed ones at apply time, halfway through an
    `up`. moto runs IAM's document validation offline (actions, ARNs, condition operators, trust shape)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("iam", region_name="us-east-1")
        checked = 0
        for plan in (dev_plan, prod_plan):
            policies, trusts = _iam_documents(plan.recording)
            for name, doc in policies:
                client.create_policy(PolicyName=f"{plan.stack}-{name}"[:128], PolicyDocument=doc)
                checked += 1
            for name, doc in trusts:
                client.create_role(RoleName=f"{plan.stack}-{name}"[:64], AssumeRolePolicyDocument=doc)
                checked += 1
    assert checked > 40


def test_iam_grammar_check_is_not_a_rubber_stamp() -> None:
    """Guard for the test above: a malformed action must be refused, or that test proves nothing."""
    import boto3
    import pytest
    from botocore.exceptions import ClientError
    from moto import mock_aws

    bad = iam._doc({"Effect": "Allow", "Action": "secretsmanager GetSecretValue", "Resource": "*"})
    with mock_aws():
        client = boto3.client("iam", region_name="us-east-1")
        with pytest.raises(ClientError, match="MalformedPolicyDocument"):
            client.create_policy(PolicyName="bad", PolicyDocument=json.dumps(bad))
