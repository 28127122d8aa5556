"""Governance rules: every taggable resource carries the required tags, and compute runs only on the
instance types allowed for the stack's environment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from retail_policies._support import Context, Rule, get, items, resource_policy

# Tags every taggable resource carries (cost allocation, ownership, incident routing); the program's
# shop_platform.tags.REQUIRED_TAG_KEYS (tests/policies check the two agree). Override: ``requiredTags``.
REQUIRED_TAGS: Final = ("stack", "service", "owner", "environment", "managed-by")

# pulumi-aws types that accept ``tags`` (read from the SDK for every type the program declares; any other
# ``aws:`` resource that passes a ``tags`` input is checked too).
TAGGABLE_TYPES: Final = frozenset(
    {
        "aws:acm/certificate:Certificate",
        "aws:cloudfront/distribution:Distribution",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:cloudwatch/logDelivery:LogDelivery",
        "aws:cloudwatch/logDeliveryDestination:LogDeliveryDestination",
        "aws:cloudwatch/logDeliverySource:LogDeliverySource",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        "aws:ec2/eip:Eip",
        "aws:ec2/flowLog:FlowLog",
        "aws:ec2/instance:Instance",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/vpc:Vpc",
        "aws:ecr/repository:Repository",
        "aws:eks/accessEntry:AccessEntry",
        "aws:eks/addon:Addon",
        "aws:eks/cluster:Cluster",
        "aws:eks/nodeGroup:NodeGroup",
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
        "aws:iam/policy:Policy",
        "aws:iam/role:Role",
        "aws:kms/key:Key",
        "aws:lb/listener:Listener",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:rds/cluster:Cluster",
        "aws:rds/instance:Instance",
        "aws:rds/parameterGroup:ParameterGroup",
        "aws:rds/subnetGroup:SubnetGroup",
        "aws:route53/healthCheck:HealthCheck",
        "aws:route53/zone:Zone",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketObjectv2:BucketObjectv2",
        "aws:secretsmanager/secret:Secret",
        "aws:shield/protection:Protection",
        "aws:sns/topic:Topic",
        "aws:sqs/queue:Queue",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:wafv2/webAcl:WebAcl",
    }
)

# Instance types per environment. Prod has no burstable (t*) classes: CPU credits run out under sustained
# load exactly when the shop is busiest. Everything is Graviton (the node AMI is ARM). Override per stack
# with policy config ``allowedInstanceTypes``.
ALLOWED_INSTANCE_TYPES: Final[Mapping[str, frozenset[str]]] = {
    "dev": frozenset(
        {
            "t4g.large",
            "t4g.xlarge",
            "m7g.large",
            "m7g.xlarge",
            "c7g.large",
            "c7g.xlarge",
            "db.t4g.medium",
            "db.t4g.large",
            "db.m7g.large",
        }
    ),
    "prod": frozenset(
        {
            "m6g.large",
            "m6g.xlarge",
            "m6g.2xlarge",
            "m7g.large",
            "m7g.xlarge",
            "m7g.2xlarge",
            "c7g.large",
            "c7g.xlarge",
            "c7g.2xlarge",
            "r7g.large",
            "r7g.xlarge",
            "db.m7g.large",
            "db.m7g.xlarge",
            "db.m7g.2xlarge",
            "db.r7g.large",
            "db.r7g.xlarge",
            "db.r7g.2xlarge",
        }
    ),
}
ALLOWED_INSTANCE_TYPES_LOCAL: Final = ALLOWED_INSTANCE_TYPES["dev"]

# Where each compute type keeps its instance type(s).
INSTANCE_TYPE_FIELDS: Final[Mapping[str, str]] = {
    "aws:eks/nodeGroup:NodeGroup": "instanceTypes",
    "aws:rds/instance:Instance": "instanceClass",
    "aws:rds/clusterInstance:ClusterInstance": "instanceClass",
    "aws:ec2/instance:Instance": "instanceType",
    "aws:ec2/launchTemplate:LaunchTemplate": "instanceType",
    "aws:autoscaling/group:Group": "instanceType",
}


def taggable(resource_type: str, props: Any) -> bool:
    """The listed taggable types, plus any ``aws:`` resource that passes a ``tags`` input (so a type added
    later is covered without editing the list)."""
    return resource_type in TAGGABLE_TYPES or (resource_type.startswith("aws:") and "tags" in props)


def check_required_tags(props: Any, ctx: Context) -> Iterable[str]:
    if not taggable(ctx.resource_type, props):
        return
    required = [str(t) for t in items(ctx.config.get("requiredTags"))] or list(REQUIRED_TAGS)
    tags = get(props, "tags")
    if not isinstance(tags, Mapping):
        yield (
            f"has no tags; set tags with {required} (shop_platform.tags.Tagger does this) so cost, owner and "
            "on-call routing can be attributed"
        )
        return
    missing = [t for t in required if not get(tags, t)]
    if missing:
        yield f"is missing required tags {missing}; add them (shop_platform.tags.Tagger sets all of them)"


def check_instance_types(props: Any, ctx: Context) -> Iterable[str]:
    field = INSTANCE_TYPE_FIELDS.get(ctx.resource_type)
    value = get(props, field) if field else None
    if field is None or value is None:
        return
    configured = [str(t) for t in items(ctx.config.get("allowedInstanceTypes"))]
    allowed = (
        frozenset(configured)
        if configured
        else ALLOWED_INSTANCE_TYPES.get(ctx.environment, ALLOWED_INSTANCE_TYPES_LOCAL)
    )
    database = field == "instanceClass"
    relevant = sorted(t for t in allowed if t.startswith("db.") == database)
    for t in items(value) or [value]:
        if str(t) not in allowed:
            yield (
                f"{field} {t} is not allowed in {ctx.environment} stack '{ctx.stack}'; allowed: {relevant} "
                "(policy config allowedInstanceTypes overrides per stack)"
            )


POLICIES: Final[list[Rule]] = [
    resource_policy(
        "required-tags",
        f"Taggable resources carry the tags {list(REQUIRED_TAGS)}",
        (),
        check_required_tags,
        remediation="tags=ctx.tags(...) on every taggable resource",
        config_schema={"requiredTags": {"type": "array", "items": {"type": "string"}}},
    ),
    resource_policy(
        "instance-type-allowlist",
        "Compute uses only the instance types allowed for the stack",
        list(INSTANCE_TYPE_FIELDS),
        check_instance_types,
        remediation="pick an allowed type (config nodeGroups[].instanceTypes, databases.instanceClass)",
        config_schema={"allowedInstanceTypes": {"type": "array", "items": {"type": "string"}}},
    ),
]
