"""Every resource rule against a compliant resource, a non-compliant one, and one with the decisive property
left out (what the engine sends when a program does not set it: the cloud default then applies).

One table, so a rule without its three cases is visible at a glance (test_pack checks none is missing)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.policies.support import check_resource

RDS = "aws:rds/instance:Instance"
PG = "aws:rds/parameterGroup:ParameterGroup"
EKS = "aws:eks/cluster:Cluster"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
LISTENER = "aws:lb/listener:Listener"
LB = "aws:lb/loadBalancer:LoadBalancer"
ACL = "aws:wafv2/webAcl:WebAcl"
ACL_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
RECORD = "aws:route53/record:Record"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
KEY = "aws:kms/key:Key"
ECR = "aws:ecr/repository:Repository"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
TAGS = {"stack": "dev", "service": "orders", "owner": "platform-team", "environment": "dev", "managed-by": "pulumi"}

GOOD_DB: dict[str, Any] = {
    "engine": "postgres",
    "storageEncrypted": True,
    "publiclyAccessible": False,
    "backupRetentionPeriod": 14.0,
    "multiAz": True,
    "deletionProtection": True,
    "skipFinalSnapshot": False,
    "manageMasterUserPassword": True,
    "instanceClass": "db.m7g.large",
    "tags": TAGS,
}
GOOD_EKS: dict[str, Any] = {
    "version": "1.35",
    "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:eu-west-1:1:key/k"}},
    "vpcConfig": {
        "endpointPrivateAccess": True,
        "endpointPublicAccess": True,
        "publicAccessCidrs": ["198.51.100.10/32"],
    },
}
GOOD_LT: dict[str, Any] = {
    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1.0},
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "volumeSize": 50.0}}],
}
HTTPS = {
    "protocol": "HTTPS",
    "port": 443.0,
    "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "defaultActions": [{"type": "forward", "targetGroupArn": "arn:tg"}],
}
HTTP = {
    "protocol": "HTTP",
    "port": 80.0,
    "defaultActions": [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}
    ],
}
GOOD_LB: dict[str, Any] = {
    "loadBalancerType": "application",
    "internal": False,
    "dropInvalidHeaderFields": True,
    "desyncMitigationMode": "strictest",
    "enableDeletionProtection": True,
    "accessLogs": {"bucket": "logs", "prefix": "alb", "enabled": True},
}


def _managed(name: str, override: str = "None") -> dict[str, Any]:
    return {
        "Name": name,
        "Priority": 1,
        "OverrideAction": {override: {}},
        "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": name}},
        "VisibilityConfig": {"CloudWatchMetricsEnabled": True, "MetricName": name, "SampledRequestsEnabled": True},
    }


RATE = {
    "Name": "rate-per-ip",
    "Priority": 0,
    "Action": {"Block": {"CustomResponse": {"ResponseCode": 429}}},
    "Statement": {"RateBasedStatement": {"Limit": 2000, "AggregateKeyType": "IP"}},
    "VisibilityConfig": {"CloudWatchMetricsEnabled": True, "MetricName": "rate", "SampledRequestsEnabled": True},
}
RULES = [RATE, _managed("AWSManagedRulesCommonRuleSet"), _managed("AWSManagedRulesKnownBadInputsRuleSet")]
GOOD_ACL: dict[str, Any] = {
    "scope": "REGIONAL",
    "defaultAction": {"allow": {}},
    "ruleJson": json.dumps(RULES),
    "visibilityConfig": {"cloudwatchMetricsEnabled": True, "metricName": "api", "sampledRequestsEnabled": True},
}
PRIMARY = {
    "name": "api.shop.example.com",
    "type": "A",
    "setIdentifier": "primary",
    "failoverRoutingPolicies": [{"type": "PRIMARY"}],
    "healthCheckId": "hc-1",
    "aliases": [{"name": "alb.example", "zoneId": "Z1", "evaluateTargetHealth": True}],
}


@dataclass(frozen=True)
class Case:
    policy: str
    type: str
    good: dict[str, Any]
    bad: dict[str, Any]  # merged over ``good``
    missing: tuple[str | int, ...]  # path deleted from ``good``
    missing_violates: bool
    expect: str  # a phrase every non-compliant message carries (what a person acts on)
    stack: str = "dev"
    config: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "rds-storage-encrypted",
        RDS,
        GOOD_DB,
        {"storageEncrypted": False},
        ("storageEncrypted",),
        True,
        "storage_encrypted=True",
    ),
    Case(
        "rds-not-publicly-accessible",
        RDS,
        GOOD_DB,
        {"publiclyAccessible": True},
        ("publiclyAccessible",),
        False,
        "publicly_accessible=False",
    ),
    Case(
        "rds-backup-retention",
        RDS,
        GOOD_DB,
        {"backupRetentionPeriod": 3.0},
        ("backupRetentionPeriod",),
        True,
        "backup_retention_period >= 7",
    ),
    Case(
        "rds-prod-multi-az",
        RDS,
        GOOD_DB,
        {"multiAz": False},
        ("multiAz",),
        True,
        "databases.multiAz: true",
        stack="prod",
    ),
    Case(
        "rds-prod-deletion-protection",
        RDS,
        GOOD_DB,
        {"deletionProtection": False},
        ("deletionProtection",),
        True,
        "deletion_protection=True",
        stack="prod",
    ),
    Case(
        "rds-managed-master-password",
        RDS,
        GOOD_DB,
        {"password": "hunter22"},
        ("manageMasterUserPassword",),
        True,
        "manage_master_user_password=True",
    ),
    Case(
        "rds-parameter-group-force-ssl",
        PG,
        {"family": "postgres17", "parameters": [{"name": "rds.force_ssl", "value": "1"}]},
        {"parameters": [{"name": "rds.force_ssl", "value": "0"}]},
        ("parameters",),
        True,
        "rds.force_ssl",
    ),
    Case(
        "eks-secrets-encryption",
        EKS,
        GOOD_EKS,
        {"encryptionConfig": {"resources": [], "provider": {}}},
        ("encryptionConfig",),
        True,
        "encryption_config",
    ),
    Case(
        "eks-endpoint-not-public",
        EKS,
        GOOD_EKS,
        {"vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}},
        ("vpcConfig", "endpointPublicAccess"),
        True,
        "public",
    ),
    Case(
        "eks-control-plane-logs",
        EKS,
        GOOD_EKS,
        {"enabledClusterLogTypes": ["api"]},
        ("enabledClusterLogTypes",),
        True,
        "enabled_cluster_log_types",
    ),
    Case("eks-supported-version", EKS, GOOD_EKS, {"version": "1.27"}, ("version",), True, "cluster.version"),
    Case(
        "ec2-launch-template-imdsv2",
        LT,
        GOOD_LT,
        {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1.0}},
        ("metadataOptions",),
        True,
        "http_tokens='required'",
    ),
    Case(
        "ec2-launch-template-encrypted-volumes",
        LT,
        GOOD_LT,
        {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}]},
        ("blockDeviceMappings", 0, "ebs", "encrypted"),
        True,
        "ebs.encrypted='true'",
    ),
    Case(
        "alb-http-redirects-to-https",
        LISTENER,
        HTTP,
        {"defaultActions": [{"type": "forward", "targetGroupArn": "arn:tg"}]},
        ("defaultActions",),
        True,
        "redirect",
    ),
    Case(
        "alb-modern-tls-policy",
        LISTENER,
        HTTPS,
        {"sslPolicy": "ELBSecurityPolicy-2016-08"},
        ("sslPolicy",),
        True,
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    ),
    Case(
        "alb-drop-invalid-headers",
        LB,
        GOOD_LB,
        {"dropInvalidHeaderFields": False},
        ("dropInvalidHeaderFields",),
        True,
        "drop_invalid_header_fields=True",
    ),
    Case(
        "alb-desync-mitigation",
        LB,
        GOOD_LB,
        {"desyncMitigationMode": "monitor"},
        ("desyncMitigationMode",),
        False,
        "strictest",
    ),
    Case(
        "alb-access-logs",
        LB,
        GOOD_LB,
        {"accessLogs": {"bucket": "logs", "enabled": False}},
        ("accessLogs",),
        True,
        "access_logs",
    ),
    Case(
        "alb-prod-deletion-protection",
        LB,
        GOOD_LB,
        {"enableDeletionProtection": False},
        ("enableDeletionProtection",),
        True,
        "enable_deletion_protection=True",
        stack="prod",
    ),
    Case(
        "waf-managed-rule-groups",
        ACL,
        GOOD_ACL,
        {
            "ruleJson": json.dumps(
                [
                    RATE,
                    _managed("AWSManagedRulesCommonRuleSet", "Count"),
                    _managed("AWSManagedRulesKnownBadInputsRuleSet"),
                ]
            )
        },
        ("ruleJson",),
        True,
        "AWSManagedRulesCommonRuleSet",
    ),
    Case(
        "waf-rate-based-rule",
        ACL,
        GOOD_ACL,
        {"ruleJson": json.dumps([{**RATE, "Action": {"Count": {}}}, *RULES[1:]])},
        ("ruleJson",),
        True,
        "rateBasedStatement",
    ),
    Case(
        "waf-metrics",
        ACL,
        GOOD_ACL,
        {"visibilityConfig": {"cloudwatchMetricsEnabled": False}},
        ("visibilityConfig",),
        True,
        "cloudwatch",
    ),
    Case(
        "waf-logging-redacts-credentials",
        ACL_LOGGING,
        {"redactedFields": [{"singleHeader": {"name": "authorization"}}, {"singleHeader": {"name": "cookie"}}]},
        {"redactedFields": [{"singleHeader": {"name": "cookie"}}]},
        ("redactedFields",),
        True,
        "authorization",
    ),
    Case(
        "route53-failover-primary-health-checked",
        RECORD,
        PRIMARY,
        {"healthCheckId": ""},
        ("healthCheckId",),
        True,
        "health_check_id",
    ),
    Case(
        "s3-public-access-block-complete",
        PAB,
        {
            "bucket": "b",
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
        {"blockPublicPolicy": False},
        ("restrictPublicBuckets",),
        True,
        "block_public_policy",
    ),
    Case(
        "kms-key-rotation",
        KEY,
        {"enableKeyRotation": True},
        {"enableKeyRotation": False},
        ("enableKeyRotation",),
        True,
        "enable_key_rotation=True",
    ),
    Case(
        "ecr-scan-on-push",
        ECR,
        {"imageScanningConfiguration": {"scanOnPush": True}},
        {"imageScanningConfiguration": {"scanOnPush": False}},
        ("imageScanningConfiguration",),
        True,
        "scan_on_push",
    ),
    Case(
        "ecr-immutable-tags",
        ECR,
        {"imageTagMutability": "IMMUTABLE"},
        {"imageTagMutability": "MUTABLE"},
        ("imageTagMutability",),
        True,
        "IMMUTABLE",
    ),
    Case(
        "vpc-default-sg-closed",
        DEFAULT_SG,
        {"vpcId": "vpc-1", "ingress": [], "egress": []},
        {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]},
        ("ingress",),
        False,
        "ingress=[]",
    ),
    Case("required-tags", RDS, GOOD_DB, {"tags": {**TAGS, "owner": ""}}, ("tags",), True, "owner"),
    Case(
        "instance-type-allowlist",
        NODE_GROUP,
        {"instanceTypes": ["m7g.large"]},
        {"instanceTypes": ["t4g.large"]},
        ("instanceTypes",),
        False,
        "allowedInstanceTypes",
        stack="prod",
    ),
]


def _without(props: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    out = copy.deepcopy(props)
    cur: Any = out
    for step in path[:-1]:
        cur = cur[step]
    del cur[path[-1]]
    return out


def _run(case: Case, props: dict[str, Any]) -> list[str]:
    return check_resource(case.policy, case.type, props, stack=case.stack, config=case.config)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.policy)
def test_compliant_resource_passes(case: Case) -> None:
    """The secure shape the program declares must pass, or the pack would block every preview."""
    assert _run(case, case.good) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.policy)
def test_non_compliant_resource_is_reported_with_the_fix(case: Case) -> None:
    """Each insecure change is caught, and the message names the property to change (actionable)."""
    found = _run(case, {**case.good, **case.bad})
    assert found, f"{case.policy} missed {case.bad}"
    assert all(case.expect in m for m in found), found


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.policy)
def test_missing_property_follows_the_cloud_default(case: Case) -> None:
    """A property the program leaves out gets the cloud's default: a violation when that default is unsafe
    (unencrypted, 1-day backups, open endpoint...), silence when it is safe (private, defensive)."""
    found = _run(case, _without(case.good, case.missing))
    assert bool(found) is case.missing_violates, found


def test_waf_rules_read_the_providers_typed_rules_as_well_as_rule_json() -> None:
    """The web ACL may carry ``rules`` (camelCase objects) instead of ``ruleJson``: both are read alike."""
    typed: list[dict[str, Any]] = [
        {
            "name": "rate",
            "priority": 0.0,
            "action": {"block": {}},
            "statement": {"rateBasedStatement": {"limit": 2000.0, "aggregateKeyType": "IP"}},
            "visibilityConfig": {"cloudwatchMetricsEnabled": True, "metricName": "rate"},
        },
        *(
            {
                "name": g,
                "priority": 1.0,
                "overrideAction": {"none": {}},
                "statement": {"managedRuleGroupStatement": {"vendorName": "AWS", "name": g}},
                "visibilityConfig": {"cloudwatchMetricsEnabled": True, "metricName": g},
            }
            for g in ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")
        ),
    ]
    props = {"scope": "REGIONAL", "rules": typed, "visibilityConfig": {"cloudwatchMetricsEnabled": True}}
    for rule in ("waf-managed-rule-groups", "waf-rate-based-rule", "waf-metrics"):
        assert check_resource(rule, ACL, props) == [], rule
    typed[1]["overrideAction"] = {"count": {}}
    typed[0]["visibilityConfig"] = {"cloudwatchMetricsEnabled": False}
    assert check_resource("waf-managed-rule-groups", ACL, props)
    assert check_resource("waf-metrics", ACL, props) == [
        "wafv2 WebAcl 'r': rule 'rate' has CloudWatch metrics off; enable them [WAF.12]"
    ]


def test_aurora_cluster_master_password_is_refused_too() -> None:
    cluster = {
        "engine": "aurora-postgresql",
        "storageEncrypted": True,
        "backupRetentionPeriod": 7.0,
        "masterPassword": "[secret]",
        "manageMasterUserPassword": False,
    }
    found = check_resource("rds-managed-master-password", "aws:rds/cluster:Cluster", cluster)
    assert len(found) == 1
    assert "masterPassword=" in found[0]
