"""DNS: the hosted zone, the API's health check and alarm, and failover records for ``api.<domain>``.

- ``Zone`` creates the public hosted zone with DNS query logging (FSBP Route53.2; the log group must be in
  us-east-1), or looks up an existing one (``createZone: false``; its owner logs it).
- ``ApiDns``: an HTTPS Route 53 health check on the ALB's ``/healthz``; a CloudWatch alarm on it that
  notifies an encrypted SNS topic; ``api.<domain>`` as failover alias records: PRIMARY the ALB (carrying the
  health check), SECONDARY the maintenance site (503 problem+json) so clients get an answer, not a timeout.

The health check targets the ALB's own DNS name, not ``api.<domain>``: checking the failover name would,
once failed over, probe the maintenance site and never fail back. Route 53 health-check metrics exist only in
us-east-1, so the alarm, its topic and the topic's key are declared there (pulumi-aws v7 per-resource region).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shop_platform import iam
from shop_platform.config import EdgeConfig
from shop_platform.context import StackContext
from shop_platform.maintenance import CLOUDFRONT_REGION, MaintenanceSite, MaintenanceSiteArgs
from shop_platform.storage import encryption_key


@dataclass(frozen=True, slots=True)
class ZoneArgs:
    ctx: StackContext
    domain: str
    create: bool
    query_log_retention_days: int = 365


class Zone(pulumi.ComponentResource):
    """The public hosted zone for the stack's domain; exposes ``zone_id`` and ``zone_arn``."""

    zone_id: pulumi.Output[str]
    zone_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ZoneArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:dns:Zone", name, None, opts)
        if args.create:
            # force_destroy stays off: destroying a zone with records in it must be a deliberate act.
            zone = aws.route53.Zone(
                f"{name}-zone",
                name=args.domain,
                comment=f"shop {args.ctx.tags.stack}",
                force_destroy=False,
                tags=args.ctx.tags(),
                opts=pulumi.ResourceOptions(parent=self, protect=args.ctx.prod),
            )
            self.zone_id = zone.zone_id
            self.zone_arn = zone.arn
            self._query_logging(name, args, zone)
        else:
            found = aws.route53.get_zone_output(name=args.domain, private_zone=False)
            self.zone_id = found.zone_id
            self.zone_arn = found.arn
        self.register_outputs({"zone_id": self.zone_id})

    def _query_logging(self, name: str, args: ZoneArgs, zone: aws.route53.Zone) -> None:
        ctx = args.ctx
        child = pulumi.ResourceOptions(parent=self)
        key = encryption_key(
            f"{name}-query-logs-key",
            ctx,
            f"{args.domain} DNS query logs",
            parent=self,
            region=CLOUDFRONT_REGION,
            service_grant=iam.logs_key_grant(ctx.account_id, CLOUDFRONT_REGION, ctx.partition),
        )
        group = aws.cloudwatch.LogGroup(
            f"{name}-query-logs",
            name=f"/aws/route53/{args.domain}",
            retention_in_days=args.query_log_retention_days,
            kms_key_id=key.arn,
            region=CLOUDFRONT_REGION,
            tags=ctx.tags(),
            opts=child,
        )
        prefix = f"arn:{ctx.partition}:logs:{CLOUDFRONT_REGION}:{ctx.account_id}:log-group:/aws/route53/"
        policy = aws.cloudwatch.LogResourcePolicy(
            f"{name}-query-logs-policy",
            policy_name=f"route53-query-logs-{ctx.tags.stack}",
            policy_document=json.dumps(iam.route53_query_logging(prefix)),
            region=CLOUDFRONT_REGION,
            opts=child,
        )
        aws.route53.QueryLog(
            f"{name}-query-log",
            zone_id=zone.zone_id,
            cloudwatch_log_group_arn=group.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )


@dataclass(frozen=True, slots=True)
class ApiDnsArgs:
    ctx: StackContext
    api_domain: str
    zone_id: pulumi.Input[str]
    alb_dns_name: pulumi.Input[str]
    alb_zone_id: pulumi.Input[str]
    # The stack's validated ``edge`` section (shop_platform.config.EdgeConfig): the alarm's address, the
    # maintenance site's per-IP limit and log retention.
    config: EdgeConfig
    health_check_path: str = "/healthz"
    failure_threshold: int = 3
    request_interval: int = 30
    access_log_bucket: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if self.request_interval not in (10, 30):
            raise ValueError("ApiDnsArgs: Route 53 health checks run every 10 or 30 seconds")
        if not 1 <= self.failure_threshold <= 10:
            raise ValueError("ApiDnsArgs: failure_threshold must be 1..10")


class ApiDns(pulumi.ComponentResource):
    """Health check, alarm, maintenance site and failover records; exposes the health check id/ARN."""

    health_check_id: pulumi.Output[str]
    health_check_arn: pulumi.Output[str]
    maintenance_distribution_arn: pulumi.Output[str]
    api_url: pulumi.Output[str]

    def __init__(self, name: str, args: ApiDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:dns:ApiDns", name, None, opts)
        ctx, tags = args.ctx, args.ctx.tags
        child = pulumi.ResourceOptions(parent=self)

        check = aws.route53.HealthCheck(
            f"{name}-health",
            type="HTTPS",
            fqdn=args.alb_dns_name,
            port=443,
            resource_path=args.health_check_path,
            enable_sni=True,
            failure_threshold=args.failure_threshold,
            request_interval=args.request_interval,
            reference_name=f"shop-{ctx.tags.stack}-api"[:64],
            tags=tags(Name=f"{args.api_domain} ALB /healthz"),
            opts=child,
        )

        key = encryption_key(
            f"{name}-alerts-key",
            ctx,
            "API health alerts topic",
            parent=self,
            region=CLOUDFRONT_REGION,
            service_grant=iam.alarm_topic_key_grant(ctx.account_id),
        )
        topic = aws.sns.Topic(
            f"{name}-alerts", kms_master_key_id=key.arn, region=CLOUDFRONT_REGION, tags=tags(), opts=child
        )
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=topic.arn,
            region=CLOUDFRONT_REGION,
            policy=topic.arn.apply(
                lambda arn: json.dumps(iam.alarm_topic_policy(arn, ctx.account_id, CLOUDFRONT_REGION, ctx.partition))
            ),
            opts=child,
        )
        if args.config.alert_email:
            aws.sns.TopicSubscription(
                f"{name}-alerts-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.config.alert_email,
                region=CLOUDFRONT_REGION,
                opts=child,
            )
        aws.cloudwatch.MetricAlarm(
            f"{name}-health-alarm",
            alarm_description=f"{args.api_domain}: the ALB health check is failing; "
            "traffic has failed over to the maintenance page",
            namespace="AWS/Route53",
            metric_name="HealthCheckStatus",
            dimensions={"HealthCheckId": check.id},
            statistic="Minimum",
            period=60,
            evaluation_periods=2,
            threshold=1,
            comparison_operator="LessThanThreshold",
            # No data means Route 53 is not reporting the check at all: treat it as down, not as fine (this
            # also alarms for the first minutes after creation, before the first data point).
            treat_missing_data="breaching",
            alarm_actions=[topic.arn],
            ok_actions=[topic.arn],
            region=CLOUDFRONT_REGION,
            tags=tags(),
            opts=child,
        )

        site = MaintenanceSite(
            f"{name}-maintenance",
            MaintenanceSiteArgs(
                ctx=ctx,
                api_domain=args.api_domain,
                zone_id=args.zone_id,
                rate_limit_per_5min=args.config.rate_limit_per_5min,
                log_retention_days=args.config.log_retention_days,
                access_log_bucket=args.access_log_bucket,
            ),
            opts=child,
        )
        aws.route53.Record(
            f"{name}-api-primary",
            zone_id=args.zone_id,
            name=args.api_domain,
            type="A",
            set_identifier="primary",
            failover_routing_policies=[{"type": "PRIMARY"}],
            health_check_id=check.id,
            aliases=[{"name": args.alb_dns_name, "zone_id": args.alb_zone_id, "evaluate_target_health": True}],
            opts=child,
        )
        aws.route53.Record(
            f"{name}-api-secondary",
            zone_id=args.zone_id,
            name=args.api_domain,
            type="A",
            set_identifier="secondary",
            failover_routing_policies=[{"type": "SECONDARY"}],
            aliases=[{"name": site.domain_name, "zone_id": site.hosted_zone_id, "evaluate_target_health": False}],
            opts=child,
        )

        self.health_check_id = check.id
        self.health_check_arn = check.arn
        self.maintenance_distribution_arn = site.distribution_arn
        self.api_url = pulumi.Output.from_input(f"https://{args.api_domain}")
        self.register_outputs({"health_check_id": self.health_check_id, "api_url": self.api_url})
