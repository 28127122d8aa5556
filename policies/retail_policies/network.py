"""Network rules: nothing but the internet-facing ALB takes traffic from the whole internet, and only on
80/443; the default security group stays closed; node volumes are encrypted."""

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
    number,
    of_type,
    resource_policy,
    stack_policy,
    truthy,
)

SECURITY_GROUP: Final = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP: Final = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
INGRESS_RULE: Final = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE: Final = "aws:ec2/securityGroupRule:SecurityGroupRule"
LOAD_BALANCERS: Final = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
LAUNCH_TEMPLATE: Final = "aws:ec2/launchTemplate:LaunchTemplate"
WORLD: Final = ("0.0.0.0/0", "::/0")
PUBLIC_PORTS: Final = (80, 443)


def _ports(props: Any) -> tuple[float | None, float | None]:
    return number(known(props, "fromPort")), number(known(props, "toPort"))


def _describe(props: Any) -> str:
    lo, hi = _ports(props)
    proto = known(props, "ipProtocol", default=known(props, "protocol", default="?"))
    if lo is None:
        return f"{proto} (all ports)"
    return f"{proto} {lo:g}" if lo == hi else f"{proto} {lo:g}-{hi:g}"


def _public_web_only(props: Any) -> bool:
    lo, hi = _ports(props)
    proto = str(known(props, "ipProtocol", default=known(props, "protocol", default=""))).lower()
    return proto in ("tcp", "6") and lo is not None and lo == hi and int(lo) in PUBLIC_PORTS


def _world_sources(props: Any) -> list[str]:
    sources = [
        known(props, "cidrIpv4"),
        known(props, "cidrIpv6"),
        *items(known(props, "cidrBlocks")),
        *items(known(props, "ipv6CidrBlocks")),
    ]
    return [str(s) for s in sources if isinstance(s, str) and s in WORLD]


def _alb_groups(resources: list[PolicyResource], groups: list[PolicyResource]) -> list[PolicyResource]:
    out: list[PolicyResource] = []
    for lb in of_type(resources, *LOAD_BALANCERS):
        if known(lb.props, "loadBalancerType", default="application") != "application":
            continue
        if truthy(known(lb.props, "internal")):
            continue
        out.extend(links(lb, "securityGroups", groups))
    return out


def check_world_ingress(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    groups = of_type(resources, SECURITY_GROUP)
    alb_groups = _alb_groups(resources, groups)

    def verdict(rule_props: Any, owner: list[PolicyResource]) -> str | None:
        world = _world_sources(rule_props)
        if not world:
            return None
        on_alb = bool(owner) and all(g in alb_groups for g in owner)
        if on_alb and _public_web_only(rule_props):
            return None
        where = (
            "an internet-facing ALB's security group"
            if on_alb
            else (label(owner[0]) if owner else "a security group this stack does not declare")
        )
        return (
            f"opens {_describe(rule_props)} to {', '.join(world)} on {where}. Only the internet-facing ALB may "
            "take traffic from the internet, and only on tcp 80/443: reference a security group "
            "(referenced_security_group_id) or a private CIDR instead"
        )

    for rule in of_type(resources, INGRESS_RULE):
        msg = verdict(rule.props, links(rule, "securityGroupId", groups))
        if msg:
            yield f"{label(rule)} {msg}", rule.urn
    for rule in of_type(resources, LEGACY_RULE):
        if known(rule.props, "type") != "ingress":
            continue
        msg = verdict(rule.props, links(rule, "securityGroupId", groups))
        if msg:
            yield f"{label(rule)} {msg}", rule.urn
    for group in groups:
        for inline in items(known(group.props, "ingress")):
            msg = verdict(inline, [group])
            if msg:
                yield f"{label(group)} inline ingress {msg}", group.urn


def check_default_sg_closed(props: Any, ctx: Context) -> Iterable[str]:
    if items(get(props, "ingress")) or items(get(props, "egress")):
        yield (
            "the VPC's default security group has rules: anything launched without a group gets them. Declare "
            "it with ingress=[] and egress=[] [EC2.2]"
        )


def check_launch_template_volumes(props: Any, ctx: Context) -> Iterable[str]:
    for mapping in items(get(props, "blockDeviceMappings")):
        ebs = get(mapping, "ebs")
        if ebs is not None and not truthy(get(ebs, "encrypted")):
            yield (
                f"block device {get(mapping, 'deviceName', default='?')} is not encrypted; set "
                "ebs.encrypted='true' (node disks hold images, logs and emptyDir data) [EC2.7]"
            )


POLICIES: Final[list[Rule]] = [
    stack_policy(
        "sg-no-world-ingress",
        "Only the internet-facing ALB's security group takes 0.0.0.0/0 or ::/0, and only on tcp 80/443",
        check_world_ingress,
        remediation="referenced_security_group_id or a private CIDR",
        url="https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html",
    ),
    resource_policy(
        "vpc-default-sg-closed",
        "The default security group has no rules [EC2.2]",
        (DEFAULT_SECURITY_GROUP,),
        check_default_sg_closed,
        remediation="aws.ec2.DefaultSecurityGroup(vpc_id, ingress=[], egress=[])",
        url="https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html",
    ),
    resource_policy(
        "ec2-launch-template-encrypted-volumes",
        "Launch template EBS volumes are encrypted [EC2.7]",
        (LAUNCH_TEMPLATE,),
        check_launch_template_volumes,
        remediation="ebs.encrypted='true'",
        url="https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html",
    ),
]
