"""Stack rules follow references between resources: each gets a compliant graph, a graph where the link is
broken, and a graph where the linking property is missing. Links are tried the way the engine offers them:
property dependencies (the CLI), then values, then plain dependencies (the offline recording)."""

from __future__ import annotations

import json
from typing import Any

from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from tests.policies.support import check_stack, resource

LB = "aws:lb/loadBalancer:LoadBalancer"
ACL = "aws:wafv2/webAcl:WebAcl"
ASSOC = "aws:wafv2/webAclAssociation:WebAclAssociation"
LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RDS = "aws:rds/instance:Instance"
PG = "aws:rds/parameterGroup:ParameterGroup"
BUCKET = "aws:s3/bucket:Bucket"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
ZONE = "aws:route53/zone:Zone"
QUERY_LOG = "aws:route53/queryLog:QueryLog"
RECORD = "aws:route53/record:Record"
HC = "aws:route53/healthCheck:HealthCheck"
DIST = "aws:cloudfront/distribution:Distribution"
PROTECTION = "aws:shield/protection:Protection"
PROTECTION_HC = "aws:shield/protectionHealthCheckAssociation:ProtectionHealthCheckAssociation"


def alb(stack: str = "dev", **props: Any) -> PolicyResource:
    return resource(LB, "alb", {"loadBalancerType": "application", "internal": False, **props}, stack=stack)


# --- alb-waf-association -----------------------------------------------------------------------------------
def test_waf_association_compliant_via_dependencies() -> None:
    lb, acl = alb(), resource(ACL, "acl", {"scope": "REGIONAL"})
    assoc = resource(ASSOC, "assoc", {"resourceArn": "arn:lb", "webAclArn": "arn:acl"}, deps=[lb, acl])
    assert check_stack("alb-waf-association", [lb, acl, assoc]) == []


def test_waf_association_compliant_via_property_dependencies_with_unknown_values() -> None:
    """During a real preview the ARNs are unknown: the rule must still link through property dependencies
    (and not stop at the first unknown value)."""
    lb, acl = alb(), resource(ACL, "acl", {"scope": "REGIONAL"})
    assoc = resource(
        ASSOC,
        "assoc",
        {"resourceArn": UNKNOWN_STRING_VALUE, "webAclArn": UNKNOWN_STRING_VALUE},
        property_deps={"resourceArn": [lb], "webAclArn": [acl]},
    )
    assert check_stack("alb-waf-association", [lb, acl, assoc]) == []


def test_internet_facing_alb_without_web_acl_is_reported() -> None:
    lb, acl = alb(), resource(ACL, "acl", {})
    found = check_stack("alb-waf-association", [lb, acl])
    assert [at for _, at in found] == [lb.urn]
    assert "WebAclAssociation" in found[0][0]


def test_waf_association_missing_resource_arn_does_not_count() -> None:
    lb, acl = alb(), resource(ACL, "acl", {})
    assoc = resource(ASSOC, "assoc", {"webAclArn": "arn:acl"}, deps=[acl])  # resourceArn missing
    assert len(check_stack("alb-waf-association", [lb, acl, assoc])) == 1


def test_internal_alb_needs_no_web_acl() -> None:
    assert check_stack("alb-waf-association", [alb(internal=True)]) == []


# --- waf-logging ---------------------------------------------------------------------------------------------
def test_waf_logging() -> None:
    acl = resource(ACL, "acl", {})
    logging = resource(LOGGING, "log", {"resourceArn": "arn:acl", "logDestinationConfigs": ["arn:logs"]}, deps=[acl])
    assert check_stack("waf-logging", [acl, logging]) == []
    found = check_stack("waf-logging", [acl])
    assert found
    assert "WebAclLoggingConfiguration" in found[0][0]
    orphan = resource(LOGGING, "log", {"logDestinationConfigs": ["arn:logs"]})  # resourceArn missing
    assert len(check_stack("waf-logging", [acl, orphan])) == 1


# --- sg-no-world-ingress -------------------------------------------------------------------------------------
def _world(name: str, sg: PolicyResource, port: float, cidr: str = "0.0.0.0/0") -> PolicyResource:
    return resource(
        INGRESS,
        name,
        {"securityGroupId": f"{sg.name}-id", "ipProtocol": "tcp", "fromPort": port, "toPort": port, "cidrIpv4": cidr},
        deps=[sg],
    )


def test_world_ingress_allowed_only_on_the_alb_for_80_and_443() -> None:
    alb_sg, db_sg = resource(SG, "alb-sg", {}), resource(SG, "db-sg", {})
    lb = resource(LB, "alb", {"loadBalancerType": "application", "securityGroups": ["alb-sg-id"]}, deps=[alb_sg])
    ok = [alb_sg, db_sg, lb, _world("in-80", alb_sg, 80.0), _world("in-443", alb_sg, 443.0)]
    assert check_stack("sg-no-world-ingress", ok) == []


def test_world_ingress_on_a_database_group_is_reported() -> None:
    alb_sg, db_sg = resource(SG, "alb-sg", {}), resource(SG, "db-sg", {})
    lb = resource(LB, "alb", {"securityGroups": ["alb-sg-id"]}, deps=[alb_sg])
    bad = _world("db-open", db_sg, 5432.0)
    found = check_stack("sg-no-world-ingress", [alb_sg, db_sg, lb, bad])
    assert [at for _, at in found] == [bad.urn]
    assert "tcp 5432" in found[0][0]
    assert "0.0.0.0/0" in found[0][0]
    assert "db-sg" in found[0][0]


def test_world_ingress_on_the_alb_for_ssh_or_ipv6_any_is_reported() -> None:
    alb_sg = resource(SG, "alb-sg", {})
    lb = resource(LB, "alb", {"securityGroups": ["alb-sg-id"]}, deps=[alb_sg])
    ssh, v6 = _world("ssh", alb_sg, 22.0), _world("v6", alb_sg, 8080.0, "::/0")
    assert len(check_stack("sg-no-world-ingress", [alb_sg, lb, ssh, v6])) == 2


def test_world_ingress_without_ports_or_group_is_reported() -> None:
    """A rule with ports missing means every port; a group that is not in the stack cannot be the ALB's."""
    alb_sg = resource(SG, "alb-sg", {})
    lb = resource(LB, "alb", {"securityGroups": ["alb-sg-id"]}, deps=[alb_sg])
    all_ports = resource(
        INGRESS, "all", {"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0", "securityGroupId": "x"}, deps=[alb_sg]
    )
    elsewhere = resource(
        INGRESS,
        "elsewhere",
        {
            "ipProtocol": "tcp",
            "fromPort": 443.0,
            "toPort": 443.0,
            "cidrIpv4": "0.0.0.0/0",
            "securityGroupId": "sg-external",
        },
    )
    found = check_stack("sg-no-world-ingress", [alb_sg, lb, all_ports, elsewhere])
    assert {at for _, at in found} == {all_ports.urn, elsewhere.urn}
    assert any("does not declare" in m for m, _ in found)


def test_inline_world_ingress_on_a_group_is_reported() -> None:
    sg = resource(
        SG,
        "legacy",
        {"ingress": [{"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["10.0.0.0/8", "0.0.0.0/0"]}]},
    )
    assert len(check_stack("sg-no-world-ingress", [sg])) == 1


# --- rds-instance-uses-ssl-parameter-group -------------------------------------------------------------------
def _pg(value: str | None) -> PolicyResource:
    params = [] if value is None else [{"name": "rds.force_ssl", "value": value}]
    return resource(PG, "params", {"family": "postgres17", "parameters": params})


def test_postgres_instance_uses_a_tls_forcing_group() -> None:
    group = _pg("1")
    db = resource(RDS, "db", {"engine": "postgres", "parameterGroupName": "params"}, deps=[group])
    assert check_stack("rds-instance-uses-ssl-parameter-group", [group, db]) == []


def test_postgres_instance_on_a_group_without_force_ssl_is_reported() -> None:
    group = _pg(None)
    db = resource(RDS, "db", {"engine": "postgres", "parameterGroupName": "params"}, deps=[group])
    found = check_stack("rds-instance-uses-ssl-parameter-group", [group, db])
    assert [at for _, at in found] == [db.urn]
    assert "rds.force_ssl" in found[0][0]


def test_postgres_instance_without_a_parameter_group_is_reported() -> None:
    db = resource(RDS, "db", {"engine": "postgres"})
    found = check_stack("rds-instance-uses-ssl-parameter-group", [db])
    assert found
    assert "default parameter group" in found[0][0]


# --- S3 companions -------------------------------------------------------------------------------------------
def _bucket_graph(*, sse: str | None = "aws:kms", block: bool = True, tls: bool = True) -> list[PolicyResource]:
    bucket = resource(BUCKET, "logs", {"forceDestroy": False})
    out = [bucket]
    if sse is not None:
        out.append(
            resource(
                SSE,
                "logs-sse",
                {"bucket": "logs", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": sse}}]},
                deps=[bucket],
            )
        )
    if block:
        out.append(resource(PAB, "logs-pab", {"bucket": "logs", "blockPublicAcls": True}, deps=[bucket]))
    statement = (
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        if tls
        else {"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject"}
    )
    out.append(
        resource(
            POLICY,
            "logs-policy",
            {"bucket": "logs", "policy": ('{"Version": "2012-10-17", "Statement": [' + json.dumps(statement) + "]}")},
            deps=[bucket],
        )
    )
    return out


def test_bucket_companions_compliant() -> None:
    graph = _bucket_graph()
    for rule in ("s3-bucket-encrypted", "s3-bucket-public-access-blocked", "s3-bucket-tls-only"):
        assert check_stack(rule, graph) == [], rule


def test_bucket_without_encryption_is_reported() -> None:
    found = check_stack("s3-bucket-encrypted", _bucket_graph(sse=None))
    assert "BucketServerSideEncryptionConfiguration" in found[0][0]
    assert check_stack("s3-bucket-encrypted", _bucket_graph(sse="none"))  # an algorithm S3 does not know


def test_bucket_without_public_access_block_is_reported() -> None:
    assert "BucketPublicAccessBlock" in check_stack("s3-bucket-public-access-blocked", _bucket_graph(block=False))[0][0]


def test_bucket_accepting_plain_http_is_reported() -> None:
    assert "aws:SecureTransport" in check_stack("s3-bucket-tls-only", _bucket_graph(tls=False))[0][0]
    no_policy = [r for r in _bucket_graph() if r.resource_type != POLICY]
    assert check_stack("s3-bucket-tls-only", no_policy)


# --- route53 -------------------------------------------------------------------------------------------------
def _failover(primary_hc: bool = True, secondary: bool = True) -> list[PolicyResource]:
    hc = resource(HC, "health", {"type": "HTTPS", "resourcePath": "/healthz"})
    primary = resource(
        RECORD,
        "primary",
        {
            "name": "api.x",
            "type": "A",
            "failoverRoutingPolicies": [{"type": "PRIMARY"}],
            **({"healthCheckId": "hc-1"} if primary_hc else {}),
        },
        deps=[hc] if primary_hc else [],
    )
    out = [hc, primary]
    if secondary:
        out.append(
            resource(
                RECORD, "secondary", {"name": "api.x", "type": "A", "failoverRoutingPolicies": [{"type": "SECONDARY"}]}
            )
        )
    return out


def test_failover_pairs() -> None:
    assert check_stack("route53-failover-complete", _failover()) == []
    assert "SECONDARY" in check_stack("route53-failover-complete", _failover(secondary=False))[0][0]
    orphan_hc = [r for r in _failover() if r.resource_type != HC]
    orphan_hc[0].dependencies.clear()
    assert "does not declare" in check_stack("route53-failover-complete", orphan_hc)[0][0]


def test_query_logging() -> None:
    zone = resource(ZONE, "zone", {"name": "shop.example.com"})
    log = resource(QUERY_LOG, "qlog", {"zoneId": "Z1", "cloudwatchLogGroupArn": "arn:lg"}, deps=[zone])
    assert check_stack("route53-query-logging", [zone, log]) == []
    assert "QueryLog" in check_stack("route53-query-logging", [zone])[0][0]
    private = resource(ZONE, "private", {"name": "internal", "vpcs": [{"vpcId": "vpc-1"}]})
    assert check_stack("route53-query-logging", [private]) == []


# --- shield-prod-edge ----------------------------------------------------------------------------------------
def _edge(stack: str, protect: bool = True, health: bool = True) -> list[PolicyResource]:
    lb = alb(stack)
    zone = resource(ZONE, "zone", {"name": "shop.example.com"}, stack=stack)
    dist = resource(DIST, "cdn", {"enabled": True}, stack=stack)
    out = [lb, zone, dist]
    if protect:
        prots = [
            resource(PROTECTION, f"p-{t.name}", {"resourceArn": f"arn:{t.name}"}, deps=[t], stack=stack)
            for t in (lb, zone, dist)
        ]
        out += prots
        if health:
            out.append(
                resource(
                    PROTECTION_HC,
                    "p-alb-hc",
                    {"shieldProtectionId": "p-alb-id", "healthCheckArn": "arn:hc"},
                    deps=[prots[0]],
                    stack=stack,
                )
            )
    return out


def test_shield_required_in_prod_only() -> None:
    assert check_stack("shield-prod-edge", _edge("prod")) == []
    assert check_stack("shield-prod-edge", _edge("dev", protect=False)) == []
    found = check_stack("shield-prod-edge", _edge("prod", protect=False))
    assert len(found) == 3
    assert all("edge.shieldAdvanced: true" in m for m, _ in found)


def test_shield_alb_protection_needs_a_health_check() -> None:
    found = check_stack("shield-prod-edge", _edge("prod", health=False))
    assert len(found) == 1
    assert "ProtectionHealthCheckAssociation" in found[0][0]


def test_prod_detected_from_config_or_tags_on_any_stack_name() -> None:
    """A prod stack called something else is still prod when the policy config or the tags say so."""
    unprotected = _edge("eu-main", protect=False)
    assert check_stack("shield-prod-edge", unprotected) == []
    assert len(check_stack("shield-prod-edge", unprotected, {"environment": "prod"})) == 3
    tagged = [resource(LB, "alb", {"tags": {"environment": "prod"}}, stack="eu-main")]
    assert len(check_stack("shield-prod-edge", tagged)) == 1
