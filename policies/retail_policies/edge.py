"""Edge rules: Shield Advanced on the prod edge, Route 53 failover that is really health-checked, DNS query
logging on created public zones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from pulumi_policy import PolicyResource

from retail_policies._support import (
    Context,
    Rule,
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

LOAD_BALANCERS: Final = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
ZONE: Final = "aws:route53/zone:Zone"
DISTRIBUTION: Final = "aws:cloudfront/distribution:Distribution"
PROTECTION: Final = "aws:shield/protection:Protection"
PROTECTION_HEALTH: Final = "aws:shield/protectionHealthCheckAssociation:ProtectionHealthCheckAssociation"
RECORD: Final = "aws:route53/record:Record"
HEALTH_CHECK: Final = "aws:route53/healthCheck:HealthCheck"
QUERY_LOG: Final = "aws:route53/queryLog:QueryLog"


def _failover(props: Any) -> str | None:
    for policy in items(get(props, "failoverRoutingPolicies")):
        kind = get(policy, "type")
        if isinstance(kind, str):
            return kind.upper()
    return None


def check_primary_health_checked(props: Any, ctx: Context) -> Iterable[str]:
    if _failover(props) == "PRIMARY" and not get(props, "healthCheckId"):
        yield (
            "a PRIMARY failover record without healthCheckId never fails over: Route 53 keeps answering with "
            "the primary while it is down; set health_check_id=<aws.route53.HealthCheck>.id"
        )
    if _failover(props) == "PRIMARY":
        for alias in items(get(props, "aliases")):
            if not truthy(get(alias, "evaluateTargetHealth")):
                yield (
                    "the PRIMARY alias has evaluateTargetHealth false; set it true so an ALB without healthy "
                    "targets also fails over"
                )


def _public_edge(resources: list[PolicyResource]) -> list[PolicyResource]:
    albs = [
        lb
        for lb in of_type(resources, *LOAD_BALANCERS)
        if known(lb.props, "loadBalancerType", default="application") == "application"
        and not truthy(known(lb.props, "internal"))
    ]
    zones = [z for z in of_type(resources, ZONE) if not items(known(z.props, "vpcs"))]  # private zones: not edge
    return [*albs, *zones, *of_type(resources, DISTRIBUTION)]


def check_shield(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    if not ctx.prod:
        return
    edge = _public_edge(resources)
    protections = of_type(resources, PROTECTION)
    health = of_type(resources, PROTECTION_HEALTH)
    for target in edge:
        covering = [p for p in protections if target in links(p, "resourceArn", edge)]
        if not covering:
            yield (
                f"{label(target)} has no Shield Advanced protection in prod stack '{ctx.stack}': add "
                "aws.shield.Protection(resource_arn=...) (set edge.shieldAdvanced: true; the account needs "
                "the Shield Advanced subscription)",
                target.urn,
            )
        elif target.resource_type in LOAD_BALANCERS and not any(
            links(h, "shieldProtectionId", covering) for h in health
        ):
            yield (
                f"{label(target)}'s Shield protection has no health check: add "
                "aws.shield.ProtectionHealthCheckAssociation (health-based detection reacts faster and "
                "with fewer false positives)",
                target.urn,
            )


def check_failover_pairs(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    records = of_type(resources, RECORD)
    checks = of_type(resources, HEALTH_CHECK)
    by_name: dict[tuple[Any, Any], list[str]] = {}
    for r in records:
        kind = _failover(r.props)
        if kind:
            by_name.setdefault((known(r.props, "name"), known(r.props, "type")), []).append(kind)
    for r in records:
        if _failover(r.props) != "PRIMARY":
            continue
        if "SECONDARY" not in by_name.get((known(r.props, "name"), known(r.props, "type")), []):
            yield (
                f"{label(r)} is a PRIMARY failover record with no SECONDARY for the same name and type: "
                "failover has nowhere to go; add the SECONDARY record (e.g. the maintenance site)",
                r.urn,
            )
        if known(r.props, "healthCheckId") and not links(r, "healthCheckId", checks):
            yield (
                f"{label(r)} names a health check this stack does not declare: declare the "
                "aws.route53.HealthCheck in the program so its path, port and thresholds are reviewed",
                r.urn,
            )


def check_query_logging(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    logs = of_type(resources, QUERY_LOG)
    for zone in of_type(resources, ZONE):
        if items(known(zone.props, "vpcs")):
            continue
        if not any(zone in links(q, "zoneId", [zone]) for q in logs):
            yield (
                f"{label(zone)} is a public zone without DNS query logging: add aws.route53.QueryLog to a "
                "us-east-1 log group [Route53.2]",
                zone.urn,
            )


POLICIES: Final[list[Rule]] = [
    stack_policy(
        "shield-prod-edge",
        "In prod, every public ALB, zone and distribution has Shield Advanced",
        check_shield,
        remediation="edge.shieldAdvanced: true (aws.shield.Protection per edge resource)",
        url="https://docs.aws.amazon.com/waf/latest/developerguide/ddos-advanced-summary.html",
    ),
    resource_policy(
        "route53-failover-primary-health-checked",
        "PRIMARY failover records carry a health check and evaluate target health",
        (RECORD,),
        check_primary_health_checked,
        remediation="health_check_id on the PRIMARY record",
        url="https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover.html",
    ),
    stack_policy(
        "route53-failover-complete",
        "Failover records come in PRIMARY/SECONDARY pairs checked by a declared health check",
        check_failover_pairs,
        remediation="a SECONDARY record and an aws.route53.HealthCheck",
        url="https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-configuring.html",
    ),
    stack_policy(
        "route53-query-logging",
        "Created public hosted zones log DNS queries [Route53.2]",
        check_query_logging,
        remediation="aws.route53.QueryLog(zone_id=zone.zone_id, ...)",
        url="https://docs.aws.amazon.com/securityhub/latest/userguide/route53-controls.html",
    ),
]
