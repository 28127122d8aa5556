"""Pure IAM and KMS policy-document builders (plain dicts: testable without Pulumi, rendered with json).

Least privilege is the rule: every document names its resources; ``"Resource": "*"`` appears only for
read-only ``Describe*`` calls that IAM cannot scope, and each such place says so.
"""

from __future__ import annotations

from typing import Any

PolicyDoc = dict[str, Any]


def _doc(*statements: dict[str, Any]) -> PolicyDoc:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def service_assume_role(
    service: str, source_account: str | None = None, source_arn_like: str | None = None
) -> PolicyDoc:
    """Trust policy letting one AWS service principal (e.g. ``eks.amazonaws.com``) assume the role.

    ``source_account`` / ``source_arn_like`` add the confused-deputy conditions (IAM user guide, "The
    confused deputy problem"): the service may assume the role only on behalf of this account (and its
    matching resources). Services that act on a caller's behalf (flow logs, RDS monitoring) need them."""
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    condition: dict[str, Any] = {}
    if source_account:
        condition["StringEquals"] = {"aws:SourceAccount": source_account}
    if source_arn_like:
        condition["ArnLike"] = {"aws:SourceArn": source_arn_like}
    if condition:
        statement["Condition"] = condition
    return _doc(statement)


def irsa_trust(oidc_provider_arn: str, issuer_url: str, namespace: str, service_account: str) -> PolicyDoc:
    """Trust policy for IAM roles for service accounts: exactly one Kubernetes service account may assume it.

    Both ``sub`` and ``aud`` are pinned: without ``sub`` any pod in the cluster could take the role.
    """
    host = issuer_url.removeprefix("https://")
    return _doc(
        {
            "Effect": "Allow",
            "Principal": {"Federated": oidc_provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                    f"{host}:aud": "sts.amazonaws.com",
                }
            },
        }
    )


def secret_reader(secret_arn: str, kms_key_arn: str, region: str) -> PolicyDoc:
    """Read one Secrets Manager secret (and decrypt it through Secrets Manager only), nothing else."""
    return _doc(
        {
            "Sid": "ReadOwnDatabaseSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": secret_arn,
        },
        {
            "Sid": "DecryptOwnDatabaseSecret",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
        },
    )


def database_connect(dbuser_arn: str) -> PolicyDoc:
    """IAM database authentication as exactly one database user of one instance (``rds-db:connect`` on
    ``arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<user>``), nothing else: no secret to read."""
    return _doc(
        {"Sid": "ConnectAsOwnDatabaseRole", "Effect": "Allow", "Action": "rds-db:connect", "Resource": dbuser_arn}
    )


def dbuser_arn(partition: str, region: str, account_id: str, resource_id: str, user: str) -> str:
    return f"arn:{partition}:rds-db:{region}:{account_id}:dbuser:{resource_id}/{user}"


def cluster_encryption(key_arn: str) -> PolicyDoc:
    """The EKS cluster role's use of its secrets key (what terraform-aws-eks attaches as
    ``cluster_encryption``): the key policy delegates to IAM, so without this the control plane depends
    solely on the grant EKS makes with the creator's permissions at creation time."""
    return _doc(
        {
            "Sid": "ClusterSecretsEncryption",
            "Effect": "Allow",
            "Resource": key_arn,
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
        }
    )


def flow_log_writer(log_group_arn: str) -> PolicyDoc:
    """What VPC Flow Logs needs to deliver into one log group."""
    return _doc(
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [log_group_arn, f"{log_group_arn}:*"],
        }
    )


def cluster_autoscaler(cluster_name: str) -> PolicyDoc:
    """Cluster Autoscaler: may resize only the node groups EKS tagged as belonging to this cluster."""
    return _doc(
        # Describe calls cannot be scoped to resources (IAM service authorization reference).
        {
            "Sid": "Discover",
            "Effect": "Allow",
            "Resource": "*",
            "Action": [
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeLaunchConfigurations",
                "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeTags",
                "ec2:DescribeImages",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplateVersions",
                "ec2:GetInstanceTypesFromInstanceRequirements",
                "eks:DescribeNodegroup",
            ],
        },
        {
            "Sid": "ScaleOwnNodeGroups",
            "Effect": "Allow",
            "Resource": "*",
            "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
            "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}},
        },
    )


def target_group_binder(target_group_arn: str) -> PolicyDoc:
    """AWS Load Balancer Controller limited to TargetGroupBinding on one target group.

    The controller never creates load balancers, listeners or security-group rules here (Pulumi owns
    them), so it gets register/deregister on the one target group plus the read-only calls it needs.
    """
    return _doc(
        {
            "Sid": "Read",
            "Effect": "Allow",
            "Resource": "*",
            "Action": [
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth",
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeListeners",
                "elasticloadbalancing:DescribeTags",
                "ec2:DescribeInstances",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
            ],
        },
        {
            "Sid": "RegisterTargets",
            "Effect": "Allow",
            "Resource": target_group_arn,
            "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
        },
    )


def kms_key_policy(
    account_id: str,
    *,
    partition: str = "aws",
    service_grant: dict[str, Any] | None = None,
) -> PolicyDoc:
    """Key policy: the account administers (and delegates use of) the key through IAM; optionally one AWS
    service principal may use it directly (``service_grant`` from the builders below)."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountAdministersThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if service_grant is not None:
        statements.append(service_grant)
    return _doc(*statements)


def logs_key_grant(account_id: str, region: str, partition: str = "aws") -> dict[str, Any]:
    """CloudWatch Logs may use the key, only for log groups of this account and region (the encryption
    context CloudWatch Logs binds to each log group's data; AWS "Encrypt log data using AWS KMS")."""
    return {
        "Sid": "CloudWatchLogsUseKey",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.amazonaws.com"},
        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        "Resource": "*",
        "Condition": {
            "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account_id}:log-group:*"}
        },
    }


def alarm_topic_key_grant(account_id: str) -> dict[str, Any]:
    """CloudWatch alarms need Decrypt + GenerateDataKey to publish to a KMS-encrypted SNS topic (the AWS
    managed SNS key does not allow it). Who may publish is restricted by the topic policy; the key grant
    is limited to this account's alarms (confused deputy). "Resource": "*" in a key policy means this key."""
    return {
        "Sid": "CloudWatchAlarmsPublish",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
    }


def alarm_topic_policy(topic_arn: str, account_id: str, region: str, partition: str = "aws") -> PolicyDoc:
    """SNS topic policy: this account's CloudWatch alarms (and the account itself) may publish."""
    return _doc(
        {
            "Sid": "AccountManagesTopic",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes"],
            "Resource": topic_arn,
        },
        {
            "Sid": "CloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:*"}},
        },
    )


def log_delivery_policy(log_group_arn: str, account_id: str, region: str, partition: str = "aws") -> PolicyDoc:
    """CloudWatch Logs resource policy letting vended-log delivery (WAF logging) write into one log group."""
    return _doc(
        {
            "Sid": "VendedLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": "delivery.logs.amazonaws.com"},
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn}:*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"},
            },
        }
    )


def route53_query_logging(log_group_arn_prefix: str) -> PolicyDoc:
    """CloudWatch Logs resource policy letting Route 53 write query logs into ``/aws/route53/*`` groups."""
    return _doc(
        {
            "Sid": "Route53QueryLogs",
            "Effect": "Allow",
            "Principal": {"Service": "route53.amazonaws.com"},
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn_prefix}*",
        }
    )


def s3_tls_only(bucket_arn: str) -> dict[str, Any]:
    """Statement denying any request to the bucket that is not over TLS (FSBP S3.5)."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def s3_access_log_delivery(bucket_arn: str, account_id: str, partition: str = "aws") -> dict[str, Any]:
    """S3 server access logging into a bucket-owner-enforced bucket: the logging service writes, only for
    this account's source buckets (S3 user guide, "Permissions for log delivery")."""
    return {
        "Sid": "S3ServerAccessLogs",
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": f"{bucket_arn}/*",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnLike": {"aws:SourceArn": f"arn:{partition}:s3:::*"},
        },
    }


def bucket_policy(*statements: dict[str, Any]) -> PolicyDoc:
    return _doc(*statements)
