"""Monthly cost estimate of a recorded plan: fixed on-demand charges per resource, from one dated price table.

Quantities come from the recorded plan (``tools.offline.Recording``): the inputs the engine would
receive (instance classes, desired node counts, Multi-AZ, allocated storage, NAT gateways, keys, rules...),
never from a copy of the stack config. Every cloud resource type of the plan is either priced by a rule
below, named as usage-priced (its bill depends on traffic or data, which a plan cannot know), or named as
free; a type in none of them, or a priced resource whose size or class has no price in the table, raises
``PricingError``: a missing price is an error, never a silent zero.

The table (``PRICE_TABLES``) holds on-demand list prices in USD for one region, with the date they were
read and where from. Re-read them before quoting a figure: ``platform/README.md``, "Cost before up", gives
the ``aws pricing get-products`` commands that check each entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tools.offline import RecordedResource, Recording

HOURS_PER_MONTH: Final = 730  # AWS's own convention in its price list and calculator


class PricingError(ValueError):
    """A resource the plan declares cannot be priced (unknown type, or no price for its class/size)."""


@dataclass(frozen=True, slots=True)
class PriceTable:
    """On-demand list prices (USD) of one region, with when and where they were read."""

    region: str
    as_of: str  # ISO date the prices were read
    source: str
    hourly: Mapping[str, float]  # key -> USD per hour
    monthly: Mapping[str, float]  # key -> USD per month (per GB-month for storage keys)

    def per_hour(self, key: str, what: str) -> float:
        if key not in self.hourly:
            raise PricingError(
                f"no hourly price for {key} ({what}) in the {self.region} table of {self.as_of}: "
                "add it to tools/pricing.py from the AWS price list"
            )
        return self.hourly[key]

    def per_month(self, key: str, what: str) -> float:
        if key not in self.monthly:
            raise PricingError(
                f"no monthly price for {key} ({what}) in the {self.region} table of {self.as_of}: "
                "add it to tools/pricing.py from the AWS price list"
            )
        return self.monthly[key]


# eu-west-1 (Ireland), on-demand, Linux, USD: the list prices of each service's public pricing page
# (aws.amazon.com/<service>/pricing, "Europe (Ireland)") as recorded on the date below. The machine that
# wrote them has no network, so they were not re-read from the Price List API then: platform/README.md,
# "Verify on first deploy", gives the `aws pricing get-products` check for each, and the date to update.
EU_WEST_1: Final = PriceTable(
    region="eu-west-1",
    as_of="2026-12-01",
    source="AWS on-demand list prices, Europe (Ireland): EC2, RDS for PostgreSQL, EKS, VPC, ELB, EBS, KMS, WAF, "
    "Shield, Route 53, CloudWatch, Secrets Manager pricing pages (to re-check: aws pricing get-products)",
    hourly={
        # EC2 instances (Linux, shared tenancy): the Graviton types config.py allows for node groups.
        "ec2:t4g.large": 0.0736,
        "ec2:t4g.xlarge": 0.1472,
        "ec2:m6g.large": 0.086,
        "ec2:m6g.xlarge": 0.172,
        "ec2:m6g.2xlarge": 0.344,
        "ec2:m7g.large": 0.0907,
        "ec2:m7g.xlarge": 0.1814,
        "ec2:m7g.2xlarge": 0.3628,
        "ec2:c7g.large": 0.0806,
        "ec2:c7g.xlarge": 0.1612,
        "ec2:c7g.2xlarge": 0.3224,
        "ec2:r7g.large": 0.119,
        "ec2:r7g.xlarge": 0.238,
        # RDS for PostgreSQL, Single-AZ; a Multi-AZ instance (one standby) costs twice the Single-AZ rate.
        "rds-postgres:db.t4g.medium": 0.072,
        "rds-postgres:db.t4g.large": 0.144,
        "rds-postgres:db.m7g.large": 0.186,
        "rds-postgres:db.m7g.xlarge": 0.372,
        "rds-postgres:db.m7g.2xlarge": 0.744,
        "rds-postgres:db.r7g.large": 0.264,
        "rds-postgres:db.r7g.xlarge": 0.528,
        "rds-postgres:db.r7g.2xlarge": 1.056,
        # EKS control plane: standard support, and extended support (6x) once a minor leaves standard.
        "eks:cluster-standard": 0.10,
        "eks:cluster-extended": 0.60,
        "vpc:nat-gateway": 0.048,
        "vpc:public-ipv4": 0.005,  # every public IPv4 address, attached or not (NAT EIPs, ALB nodes)
        "vpc:interface-endpoint-az": 0.011,  # per interface endpoint per AZ
        "elb:alb": 0.0252,
    },
    monthly={
        "ebs:gp3-gb": 0.088,
        "rds:gp3-gb": 0.127,  # Single-AZ; Multi-AZ stores two copies (2x)
        "kms:key": 1.0,
        "secretsmanager:secret": 0.40,
        "waf:web-acl": 5.0,
        "waf:rule": 1.0,  # each rule or managed rule group in a web ACL
        "shield:advanced": 3000.0,  # per organisation, one-year commitment
        "route53:hosted-zone": 0.50,
        "route53:health-check-aws": 0.50,
        "route53:health-check-option-aws": 1.00,  # HTTPS, string match...
        "cloudwatch:alarm": 0.10,
        "cloudwatch:alarm-high-resolution": 0.30,
    },
)
PRICE_TABLES: Final[Mapping[str, PriceTable]] = {EU_WEST_1.region: EU_WEST_1}


@dataclass(frozen=True, slots=True)
class Commitment:
    what: str
    months: int


@dataclass(frozen=True, slots=True)
class LineItem:
    what: str  # e.g. "RDS db.m7g.large Multi-AZ (prod-orders)"
    category: str  # groups lines for the top drivers: "RDS instances", "NAT gateways", ...
    monthly_usd: float
    commitment: Commitment | None = None


# Types billed only by use (requests, GB stored or transferred, log volume): a plan cannot size them.
USAGE_PRICED: Final[Mapping[str, str]] = {
    "aws:s3/bucket:Bucket": "S3 storage and requests",
    "aws:s3/bucketV2:BucketV2": "S3 storage and requests",
    "aws:s3/bucketObjectv2:BucketObjectv2": "S3 storage",
    "aws:ecr/repository:Repository": "ECR storage per GB-month",
    "aws:cloudwatch/logGroup:LogGroup": "CloudWatch Logs ingestion and storage",
    "aws:ec2/flowLog:FlowLog": "flow-log delivery to CloudWatch Logs",
    "aws:route53/queryLog:QueryLog": "query-log delivery to CloudWatch Logs",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": "WAF log delivery",
    "aws:cloudfront/distribution:Distribution": "CloudFront requests and transfer",
    "aws:sns/topic:Topic": "SNS notifications",
    "aws:sns/topicSubscription:TopicSubscription": "SNS deliveries",
    "aws:s3/bucketLoggingV2:BucketLoggingV2": "S3 access-log storage",
    "aws:backup/vault:Vault": "AWS Backup storage",
    "aws:backup/plan:Plan": "AWS Backup storage and copies",
    "aws:lambda/function:Function": "Lambda invocations",
    "aws:cloudwatch/logDelivery:LogDelivery": "CloudWatch vended-log delivery per GB",
}
# Types with no charge of their own (their cost, if any, is billed through a priced resource).
FREE_TYPE_PREFIXES: Final[tuple[str, ...]] = (
    "aws:iam/",  # identities and policies
    "kubernetes:",
    "random:",
    "tls:",
    "pulumi:providers:",  # run on the nodes / in the engine (PVCs: below)
)
FREE_TYPES: Final[frozenset[str]] = frozenset(
    {
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/route:Route",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        "aws:ec2/launchTemplate:LaunchTemplate",  # its volumes are priced per node (node groups)
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:eks/accessEntry:AccessEntry",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
        "aws:eks/addon:Addon",
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "aws:rds/parameterGroup:ParameterGroup",
        "aws:rds/subnetGroup:SubnetGroup",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketLogging:BucketLogging",
        "aws:lb/listener:Listener",
        "aws:lb/targetGroup:TargetGroup",
        "aws:lb/listenerRule:ListenerRule",
        "aws:route53/record:Record",
        "aws:acm/certificate:Certificate",  # public ACM certificates are free
        "aws:acm/certificateValidation:CertificateValidation",
        "aws:kms/alias:Alias",
        "aws:ecr/lifecyclePolicy:LifecyclePolicy",
        "aws:ecr/repositoryPolicy:RepositoryPolicy",
        "aws:wafv2/webAclAssociation:WebAclAssociation",
        "aws:shield/protection:Protection",  # included in the subscription (priced once, below)
        "aws:shield/protectionHealthCheckAssociation:ProtectionHealthCheckAssociation",
        "aws:sns/topicPolicy:TopicPolicy",
        "aws:cloudwatch/logResourcePolicy:LogResourcePolicy",
        "aws:cloudfront/originAccessControl:OriginAccessControl",
        "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy",
        "aws:kms/keyPolicy:KeyPolicy",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:ec2/vpcEndpointRouteTableAssociation:VpcEndpointRouteTableAssociation",
        "aws:ebs/encryptionByDefault:EncryptionByDefault",
        "aws:ebs/defaultKmsKey:DefaultKmsKey",
        "aws:secretsmanager/secretVersion:SecretVersion",
        "aws:secretsmanager/secretRotation:SecretRotation",
        "aws:secretsmanager/secretPolicy:SecretPolicy",
        "aws:backup/selection:Selection",
        "aws:shield/applicationLayerAutomaticResponse:ApplicationLayerAutomaticResponse",  # in the subscription
        "aws:shield/proactiveEngagement:ProactiveEngagement",
        "aws:shield/drtAccessRoleArnAssociation:DrtAccessRoleArnAssociation",
        "aws:cloudwatch/logStream:LogStream",
        "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter",
        # A vended-log source and destination are configuration; the delivery between them is billed by volume.
        "aws:cloudwatch/logDeliverySource:LogDeliverySource",
        "aws:cloudwatch/logDeliveryDestination:LogDeliveryDestination",
    }
)

_QUANTITY: Final = re.compile(r"^(\d+(?:\.\d+)?)(Mi|Gi|Ti)$")
_GIB: Final = {"Mi": 1 / 1024, "Gi": 1.0, "Ti": 1024.0}


def _hours(table: PriceTable, key: str, what: str, count: float = 1) -> float:
    return table.per_hour(key, what) * HOURS_PER_MONTH * count


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PricingError(f"{what}: expected a number in the plan, found {value!r}")
    return float(value)


def _eks_cluster(r: RecordedResource, _rec: Recording, t: PriceTable) -> list[LineItem]:
    # EKS bills extended support when the policy says EXTENDED or is left unset (the API default).
    support = (r.inputs.get("upgradePolicy") or {}).get("supportType", "EXTENDED")
    key = "eks:cluster-standard" if support == "STANDARD" else "eks:cluster-extended"
    return [
        LineItem(
            f"EKS control plane {r.inputs.get('version')} ({support.lower()} support)",
            "EKS control plane",
            _hours(t, key, r.type),
        )
    ]


def _node_group(r: RecordedResource, rec: Recording, t: PriceTable) -> list[LineItem]:
    types = r.inputs.get("instanceTypes") or []
    if not types:
        raise PricingError(f"{r.name}: node group without instanceTypes cannot be priced")
    scaling = r.inputs.get("scalingConfig") or {}
    desired = _num(scaling.get("desiredSize"), f"{r.name} scalingConfig.desiredSize")
    # Managed node groups launch On-Demand capacity in the order of instanceTypes ("prioritized"): the first.
    items = [
        LineItem(
            f"{desired:g} x {types[0]} nodes ({r.name}; up to {scaling.get('maxSize', desired):g})",
            "EC2 nodes",
            _hours(t, f"ec2:{types[0]}", r.type, desired),
        )
    ]
    template_id = (r.inputs.get("launchTemplate") or {}).get("id")
    template = rec.by_id().get(template_id) if template_id else None
    if template is None:
        raise PricingError(f"{r.name}: its launch template is not in the plan, so its node volumes cannot be priced")
    for mapping in template.inputs.get("blockDeviceMappings") or []:
        ebs = mapping.get("ebs") or {}
        if ebs.get("volumeType") != "gp3":
            raise PricingError(f"{template.name}: no price for {ebs.get('volumeType')!r} volumes (gp3 only)")
        size = _num(ebs.get("volumeSize"), f"{template.name} volumeSize")
        items.append(
            LineItem(
                f"{desired:g} x {size:g} GiB gp3 node volumes ({r.name})",
                "EBS volumes",
                t.per_month("ebs:gp3-gb", r.type) * size * desired,
            )
        )
    return items


def _rds_instance(r: RecordedResource, _rec: Recording, t: PriceTable) -> list[LineItem]:
    klass, engine = r.inputs.get("instanceClass"), r.inputs.get("engine")
    if engine != "postgres":
        raise PricingError(f"{r.name}: no price for RDS engine {engine!r} (postgres only)")
    copies = 2 if r.inputs.get("multiAz") else 1
    label = f"{r.inputs.get('identifier', r.name)}"
    az = "Multi-AZ" if copies == 2 else "Single-AZ"
    items = [
        LineItem(f"RDS {klass} {az} ({label})", "RDS instances", _hours(t, f"rds-postgres:{klass}", r.type, copies))
    ]
    if r.inputs.get("storageType") != "gp3":
        raise PricingError(f"{r.name}: no price for RDS storage {r.inputs.get('storageType')!r} (gp3 only)")
    size = _num(r.inputs.get("allocatedStorage"), f"{r.name} allocatedStorage")
    items.append(
        LineItem(
            f"RDS {size:g} GiB gp3 {az} ({label})", "RDS storage", t.per_month("rds:gp3-gb", r.type) * size * copies
        )
    )
    if r.inputs.get("manageMasterUserPassword"):  # RDS creates and bills a Secrets Manager secret
        items.append(
            LineItem(
                f"RDS-managed master secret ({label})", "Secrets Manager", t.per_month("secretsmanager:secret", r.type)
            )
        )
    return items


def _load_balancer(r: RecordedResource, _rec: Recording, t: PriceTable) -> list[LineItem]:
    kind = r.inputs.get("loadBalancerType", "application")
    if kind != "application":
        raise PricingError(f"{r.name}: no price for a {kind!r} load balancer (application only)")
    items = [LineItem(f"ALB ({r.name}; plus LCUs by traffic)", "Load balancer", _hours(t, "elb:alb", r.type))]
    if not r.inputs.get("internal"):  # one public IPv4 per subnet (AZ) the ALB has a node in
        subnets = len(r.inputs.get("subnets") or [])
        items.append(
            LineItem(f"{subnets} public IPv4 of the ALB", "Public IPv4", _hours(t, "vpc:public-ipv4", r.type, subnets))
        )
    return items


def _web_acl(r: RecordedResource, _rec: Recording, t: PriceTable) -> list[LineItem]:
    rules = r.inputs.get("rules") or []
    for rule in rules:
        group = ((rule.get("statement") or {}).get("managedRuleGroupStatement") or {}).get("name", "")
        if group in {"AWSManagedRulesBotControlRuleSet", "AWSManagedRulesATPRuleSet", "AWSManagedRulesACFPRuleSet"}:
            raise PricingError(f"{r.name}: {group} has its own subscription fee, not in the price table")
    return [
        LineItem(
            f"WAF web ACL with {len(rules)} rules (plus per-request fees)",
            "WAF",
            t.per_month("waf:web-acl", r.type) + t.per_month("waf:rule", r.type) * len(rules),
        )
    ]


def _health_check(r: RecordedResource, _rec: Recording, t: PriceTable) -> list[LineItem]:
    kind = str(r.inputs.get("type", ""))
    options = sum(
        [
            kind.startswith("HTTPS"),
            kind.endswith("STR_MATCH"),
            _num(r.inputs.get("requestInterval", 30), r.name) < 30,
            bool(r.inputs.get("measureLatency")),
        ]
    )
    return [
        LineItem(
            f"Route 53 health check {kind} ({options} optional features)",
            "Route 53",
            t.per_month("route53:health-check-aws", r.type)
            + t.per_month("route53:health-check-option-aws", r.type) * options,
        )
    ]


def _alarm(r: RecordedResource, _rec: Recording, t: PriceTable) -> list[LineItem]:
    high = _num(r.inputs.get("period", 60), r.name) < 60
    key = "cloudwatch:alarm-high-resolution" if high else "cloudwatch:alarm"
    return [LineItem(f"CloudWatch alarm ({r.name})", "CloudWatch alarms", t.per_month(key, r.type))]


def _vpc_endpoint(r: RecordedResource, _rec: Recording, t: PriceTable) -> list[LineItem]:
    if r.inputs.get("vpcEndpointType", "Gateway") == "Gateway":
        return []  # S3/DynamoDB gateway endpoints are free
    azs = len(r.inputs.get("subnetIds") or [])
    return [
        LineItem(
            f"interface endpoint {r.inputs.get('serviceName')} in {azs} AZs",
            "VPC endpoints",
            _hours(t, "vpc:interface-endpoint-az", r.type, azs),
        )
    ]


def _fixed(
    category: str, what: str, key: str, hourly: bool = False, commitment: Commitment | None = None
) -> Callable[[RecordedResource, Recording, PriceTable], list[LineItem]]:
    def rule(r: RecordedResource, _rec: Recording, t: PriceTable) -> list[LineItem]:
        cost = _hours(t, key, r.type) if hourly else t.per_month(key, r.type)
        return [LineItem(f"{what} ({r.name})", category, cost, commitment)]

    return rule


PRICED: Final[Mapping[str, Callable[[RecordedResource, Recording, PriceTable], list[LineItem]]]] = {
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:rds/instance:Instance": _rds_instance,
    "aws:lb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:wafv2/webAcl:WebAcl": _web_acl,
    "aws:route53/healthCheck:HealthCheck": _health_check,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarm,
    "aws:ec2/vpcEndpoint:VpcEndpoint": _vpc_endpoint,
    "aws:ec2/natGateway:NatGateway": _fixed(
        "NAT gateways", "NAT gateway (plus per-GB processing)", "vpc:nat-gateway", hourly=True
    ),
    "aws:ec2/eip:Eip": _fixed("Public IPv4", "Elastic IP (public IPv4)", "vpc:public-ipv4", hourly=True),
    "aws:kms/key:Key": _fixed("KMS keys", "KMS key", "kms:key"),
    "aws:secretsmanager/secret:Secret": _fixed("Secrets Manager", "secret", "secretsmanager:secret"),
    "aws:route53/zone:Zone": _fixed("Route 53", "hosted zone", "route53:hosted-zone"),
}
SHIELD_COMMITMENT: Final = Commitment("AWS Shield Advanced subscription", months=12)


@dataclass(frozen=True, slots=True)
class Estimate:
    stack: str
    table: PriceTable
    items: tuple[LineItem, ...]
    usage_priced: Mapping[str, int] = field(default_factory=dict)  # description -> resource count

    @property
    def total(self) -> float:
        return sum(i.monthly_usd for i in self.items)

    def by_category(self) -> list[tuple[str, float]]:
        sums: dict[str, float] = {}
        for item in self.items:
            sums[item.category] = sums.get(item.category, 0.0) + item.monthly_usd
        return sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))

    def top_drivers(self, n: int = 5) -> list[tuple[str, float]]:
        return self.by_category()[:n]

    def commitments(self) -> list[tuple[Commitment, float]]:
        return [(i.commitment, i.monthly_usd) for i in self.items if i.commitment is not None]

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "region": self.table.region,
            "prices_as_of": self.table.as_of,
            "source": self.table.source,
            "hours_per_month": HOURS_PER_MONTH,
            "total_usd_per_month": round(self.total, 2),
            "by_category": {c: round(v, 2) for c, v in self.by_category()},
            "items": [
                {
                    "what": i.what,
                    "category": i.category,
                    "usd_per_month": round(i.monthly_usd, 2),
                    **({"commitment_months": i.commitment.months} if i.commitment else {}),
                }
                for i in self.items
            ],
            "usage_priced_not_estimated": dict(sorted(self.usage_priced.items())),
        }

    def render(self) -> str:
        t = self.table
        lines = [
            f"monthly cost estimate, stack {self.stack}: USD {self.total:,.2f} "
            f"(on-demand {t.region} list prices of {t.as_of}, {HOURS_PER_MONTH} h/month; fixed charges only)",
            f"  prices: {t.source} (tools/pricing.py)",
        ]
        if self.items:
            lines.append("  top drivers:")
        for rank, (category, cost) in enumerate(self.top_drivers(), 1):
            share = cost / self.total * 100 if self.total else 0.0
            lines.append(f"    {rank}. {category:<18} USD {cost:>10,.2f}  ({share:4.1f}%)")
        for commitment, monthly in self.commitments():
            lines.append(
                f"  WARNING commitment: {commitment.what} is a {commitment.months}-month term "
                f"(USD {monthly * commitment.months:,.0f} over the term), billed whether or not the stack "
                "exists; subscribing cannot be undone by `pulumi destroy`"
            )
        if self.usage_priced:
            listed = ", ".join(f"{what} ({n})" for what, n in sorted(self.usage_priced.items()))
            lines.append(f"  not estimated (billed by use): {listed}; plus data transfer, NAT and LCU processing")
        return "\n".join(lines)


def estimate(
    stack: str, recording: Recording, region: str, tables: Mapping[str, PriceTable] = PRICE_TABLES
) -> Estimate:
    """Price every cloud resource of the plan; raise ``PricingError`` on anything that cannot be priced."""
    if region not in tables:
        raise PricingError(
            f"no price table for region {region} (have: {', '.join(sorted(tables))}): add one to tools/pricing.py"
        )
    table = tables[region]
    items: list[LineItem] = []
    usage: dict[str, int] = {}
    for r in _cloud_resources(recording.resources):
        if r.type in PRICED:
            items.extend(PRICED[r.type](r, recording, table))
        elif r.type in USAGE_PRICED:
            usage[USAGE_PRICED[r.type]] = usage.get(USAGE_PRICED[r.type], 0) + 1
        elif r.type not in FREE_TYPES and not r.type.startswith(FREE_TYPE_PREFIXES):
            raise PricingError(
                f"no pricing rule for {r.type} ({r.name}): add it to tools/pricing.py "
                "(PRICED, USAGE_PRICED or FREE_TYPES, with the reason)"
            )
    if recording.of_type("aws:shield/protection:Protection"):
        items.append(
            LineItem(
                "Shield Advanced subscription (per organisation; plus data transfer out)",
                "Shield Advanced",
                table.per_month("shield:advanced", "aws:shield/protection:Protection"),
                SHIELD_COMMITMENT,
            )
        )
    items.extend(_persistent_volumes(recording, table))
    # Dearest first, then by name: the recording's order varies between runs (resources register
    # concurrently), and cost.json is diffed in review.
    items.sort(key=lambda i: (-i.monthly_usd, i.what))
    return Estimate(stack, table, tuple(items), usage)


def _cloud_resources(resources: Iterable[RecordedResource]) -> list[RecordedResource]:
    return [r for r in resources if r.custom]


def _gib(quantity: Any, where: str) -> float:
    match = _QUANTITY.match(str(quantity))
    if not match:
        raise PricingError(f"{where}: storage request {quantity!r} is not a Mi/Gi/Ti quantity")
    return float(match.group(1)) * _GIB[match.group(2)]


def _claims(node: Any, where: str) -> Iterable[tuple[float, float]]:
    """(GiB, copies) of every volume claim template in a Kubernetes input tree: ECK ``nodeSets`` (``count``),
    StatefulSet-like specs (``replicas``) and the Prometheus operator's ``storageSpec``."""
    if isinstance(node, dict):
        copies = _num(node.get("count", node.get("replicas", 1)), f"{where} count/replicas")
        for template in node.get("volumeClaimTemplates") or []:
            yield _gib(template["spec"]["resources"]["requests"]["storage"], where), copies
        storage = (node.get("storageSpec") or {}).get("volumeClaimTemplate")
        if storage:
            yield _gib(storage["spec"]["resources"]["requests"]["storage"], where), copies
        for value in node.values():
            yield from _claims(value, where)
    elif isinstance(node, list):
        for value in node:
            yield from _claims(value, where)


def _persistent_volumes(recording: Recording, table: PriceTable) -> list[LineItem]:
    """EBS volumes the cluster's PersistentVolumeClaims provision (gp3, the cluster's default StorageClass)."""
    items = []
    for r in recording.resources:
        if not r.type.startswith("kubernetes:"):
            continue
        for gib, copies in _claims(r.inputs, r.name):
            items.append(
                LineItem(
                    f"{copies:g} x {gib:g} GiB gp3 persistent volumes ({r.name})",
                    "EBS volumes",
                    table.per_month("ebs:gp3-gb", r.type) * gib * copies,
                )
            )
    return items
