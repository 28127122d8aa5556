"""Maintenance site: S3 + CloudFront answering every request with 503 and an RFC 9457 problem document.

It is the SECONDARY target of ``api.<domain>``'s failover record, so while the ALB is unhealthy clients get
a clear, machine-readable "the shop is in maintenance" (and ``Retry-After``) instead of a timeout.

How the 503 is produced without code at the edge: the bucket holds one object, ``maintenance/problem.json``.
Every other path is missing, and S3 answers a missing key behind Origin Access Control with 403; CloudFront
maps 403/404/405 to status 503 with that document as the body (``Content-Type`` comes from the object's
metadata). Only a direct request for ``/maintenance/problem.json`` itself gets 200.
CloudFront only takes certificates from us-east-1, so this site has its own certificate there.

Hardening (FSBP CloudFront controls in brackets): a web ACL of scope CLOUDFRONT in us-east-1 (IP reputation
and a per-IP rate limit) [CloudFront.6]; access logs through CloudWatch vended-log delivery into an encrypted
us-east-1 log group with a retention [CloudFront.5, see platform/README.md "verify on first deploy"]; a
default root object [CloudFront.1]; the bucket policy lets only THIS distribution read (``AWS:SourceArn``
is its ARN, so no other distribution in the account can use the bucket as an origin).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from shop_platform import iam, versions, waf
from shop_platform.certificate import DnsValidatedCertificate, DnsValidatedCertificateArgs
from shop_platform.context import StackContext
from shop_platform.storage import SecureBucket, SecureBucketArgs, encryption_key

CLOUDFRONT_REGION = "us-east-1"
PROBLEM_KEY = "maintenance/problem.json"
# AWS managed cache policy "CachingDisabled": a maintenance answer must never outlive the maintenance.
CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
RETRY_AFTER_SECONDS = 120


def maintenance_problem(api_domain: str) -> dict[str, Any]:
    """The body clients receive while the shop is down (shape of the API contract's errors)."""
    return {
        "type": f"https://{api_domain}/problems/maintenance",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The shop is in maintenance. Please retry in a few minutes.",
        "instance": "/",
        "request_id": None,
    }


def cloudfront_read_grant(key_prefix: str) -> Any:
    """Bucket-policy statement: CloudFront may read ``key_prefix*`` only for the distribution whose ARN is the
    policy's grant context (S3 user guide, OAC: "AWS:SourceArn": the distribution ARN)."""

    def grants(bucket_arn: str, distribution_arn: str) -> list[dict[str, Any]]:
        if not distribution_arn.startswith("arn:"):
            raise ValueError("cloudfront_read_grant: the grant context must be the distribution's ARN")
        return [
            {
                "Sid": "CloudFrontReadsMaintenancePage",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/{key_prefix}*",
                "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
            }
        ]

    return grants


def maintenance_web_acl_rules(rate_limit: int) -> list[dict[str, Any]]:
    """The API's managed groups and per-IP rate limit (the policy pack requires the groups on every web ACL;
    together about 1,130 of the 1,500 WCUs a web ACL gets without extra charge). No login rule: the site
    has no login."""
    reputation, *content = waf.MANAGED_GROUPS
    return [
        waf.managed_group_rule(reputation, 0),
        waf.rate_limit_rule(rate_limit, 10),
        *(waf.managed_group_rule(group, 30 + i) for i, group in enumerate(content)),
    ]


@dataclass(frozen=True, slots=True)
class MaintenanceSiteArgs:
    ctx: StackContext
    api_domain: str
    zone_id: pulumi.Input[str]
    rate_limit_per_5min: int = 2000
    log_retention_days: int = 365
    # The stack's S3 server access-log bucket (FSBP S3.9); in the stack's region, like this site's bucket.
    access_log_bucket: pulumi.Input[str] | None = None


class MaintenanceSite(pulumi.ComponentResource):
    """Exposes the distribution's domain name, hosted zone id (for alias records) and ARN."""

    domain_name: pulumi.Output[str]
    hosted_zone_id: pulumi.Output[str]
    distribution_arn: pulumi.Output[str]

    def __init__(self, name: str, args: MaintenanceSiteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:maintenance:MaintenanceSite", name, None, opts)
        ctx, tags = args.ctx, args.ctx.tags
        child = pulumi.ResourceOptions(parent=self)

        cert = DnsValidatedCertificate(
            f"{name}-cert",
            DnsValidatedCertificateArgs(
                domain=args.api_domain, zone_id=args.zone_id, region=CLOUDFRONT_REGION, tags=tags()
            ),
            child,
        )

        # The distribution needs the bucket (its origin) and the bucket policy needs the distribution's ARN:
        # a deferred output, resolved below, makes the policy (inside SecureBucket) wait for it.
        deferred: tuple[pulumi.Output[str], Callable[[pulumi.Output[str]], None]] = pulumi.deferred_output()
        dist_arn, resolve_dist_arn = deferred
        bucket = SecureBucket(
            f"{name}-site",
            SecureBucketArgs(
                ctx=ctx,
                sse_algorithm="AES256",
                expire_days=3653,
                grants=cloudfront_read_grant("maintenance/"),
                grant_context=dist_arn,
                access_log_bucket=args.access_log_bucket,
            ),
            opts=child,
        )
        aws.s3.BucketObjectv2(
            f"{name}-problem",
            bucket=bucket.bucket_name,
            key=PROBLEM_KEY,
            content=json.dumps(maintenance_problem(args.api_domain)),
            content_type="application/problem+json",
            cache_control="no-store",
            tags=tags(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[bucket.versioning]),
        )
        acl = aws.wafv2.WebAcl(
            f"{name}-web-acl",
            scope="CLOUDFRONT",
            region=CLOUDFRONT_REGION,
            description=f"maintenance site of stack {ctx.tags.stack}",
            default_action={"allow": {}},
            rules=waf.web_acl_rule_args(maintenance_web_acl_rules(args.rate_limit_per_5min)),
            visibility_config={
                "cloudwatch_metrics_enabled": True,
                "metric_name": f"shop-{ctx.tags.stack}-maintenance",
                "sampled_requests_enabled": True,
            },
            tags=tags(),
            opts=child,
        )
        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            name=f"shop-{ctx.tags.stack}-maintenance",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            description="maintenance bucket",
            opts=child,
        )
        headers = aws.cloudfront.ResponseHeadersPolicy(
            f"{name}-headers",
            name=f"shop-{ctx.tags.stack}-maintenance",
            custom_headers_config={
                "items": [{"header": "Retry-After", "value": str(RETRY_AFTER_SECONDS), "override": True}]
            },
            security_headers_config={
                "strict_transport_security": {
                    "access_control_max_age_sec": 63072000,
                    "include_subdomains": True,
                    "override": True,
                },
                "content_type_options": {"override": True},
            },
            opts=child,
        )
        error_pages = [
            aws.cloudfront.DistributionCustomErrorResponseArgs(
                error_code=code, response_code=503, response_page_path=f"/{PROBLEM_KEY}", error_caching_min_ttl=10
            )
            for code in (403, 404, 405)
        ]
        dist = aws.cloudfront.Distribution(
            f"{name}-cdn",
            enabled=True,
            comment=f"{args.api_domain} maintenance (failover secondary)",
            aliases=[args.api_domain],
            price_class="PriceClass_100",
            http_version="http2and3",
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id="maintenance", domain_name=bucket.regional_domain_name, origin_access_control_id=oac.id
                )
            ],
            default_root_object=PROBLEM_KEY,
            web_acl_id=acl.arn,
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id="maintenance",
                viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
                cached_methods=["GET", "HEAD"],
                cache_policy_id=CACHING_DISABLED_POLICY_ID,
                response_headers_policy_id=headers.id,
                compress=True,
            ),
            custom_error_responses=error_pages,
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")
            ),
            viewer_certificate=aws.cloudfront.DistributionViewerCertificateArgs(
                acm_certificate_arn=cert.certificate_arn,
                ssl_support_method="sni-only",
                minimum_protocol_version=versions.CLOUDFRONT_MIN_PROTOCOL,
            ),
            tags=tags(),
            opts=child,
        )
        resolve_dist_arn(dist.arn)

        # Access logs (CloudWatch vended-log delivery v2: no ACL-enabled bucket needed, which the
        # bucket-owner-enforced buckets here cannot be). CloudFront delivers from us-east-1.
        logs_key = encryption_key(
            f"{name}-logs-key",
            ctx,
            "maintenance CloudFront access logs",
            parent=self,
            region=CLOUDFRONT_REGION,
            service_grant=iam.logs_key_grant(ctx.account_id, CLOUDFRONT_REGION, ctx.partition),
        )

        def delivered_log_group(suffix: str, group_name: str) -> tuple[aws.cloudwatch.LogGroup, pulumi.Resource]:
            """An encrypted us-east-1 log group with a retention, and the resource policy letting AWS log
            delivery write into it (iam.log_delivery_policy)."""
            group = aws.cloudwatch.LogGroup(
                f"{name}-{suffix}",
                name=group_name,
                retention_in_days=args.log_retention_days,
                kms_key_id=logs_key.arn,
                region=CLOUDFRONT_REGION,
                tags=tags(),
                opts=child,
            )
            policy = aws.cloudwatch.LogResourcePolicy(
                f"{name}-{suffix}-delivery",
                policy_name=f"{group_name.strip('/').replace('/', '-')}-delivery",
                region=CLOUDFRONT_REGION,
                policy_document=group.arn.apply(
                    lambda arn: json.dumps(
                        iam.log_delivery_policy(arn, ctx.account_id, CLOUDFRONT_REGION, ctx.partition)
                    )
                ),
                opts=child,
            )
            return group, policy

        log_group, delivery_policy = delivered_log_group(
            "access-logs", f"/shop/{ctx.tags.stack}/maintenance-cloudfront"
        )
        # WAF logs of the CloudFront web ACL [WAF.11]: same key, a group named aws-waf-logs-* in us-east-1.
        waf_logs, waf_delivery = delivered_log_group("waf-logs", f"aws-waf-logs-shop-{ctx.tags.stack}-maintenance")
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-web-acl-logging",
            resource_arn=acl.arn,
            log_destination_configs=[waf_logs.arn],
            redacted_fields=[{"single_header": {"name": h}} for h in waf.REDACTED_HEADERS],
            region=CLOUDFRONT_REGION,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[waf_delivery]),
        )
        source = aws.cloudwatch.LogDeliverySource(
            f"{name}-log-source",
            name=f"shop-{ctx.tags.stack}-maintenance-cdn",
            log_type="ACCESS_LOGS",
            resource_arn=dist.arn,
            region=CLOUDFRONT_REGION,
            tags=tags(),
            opts=child,
        )
        destination = aws.cloudwatch.LogDeliveryDestination(
            f"{name}-log-destination",
            name=f"shop-{ctx.tags.stack}-maintenance-cdn",
            delivery_destination_configuration={"destination_resource_arn": log_group.arn},
            region=CLOUDFRONT_REGION,
            tags=tags(),
            opts=child,
        )
        aws.cloudwatch.LogDelivery(
            f"{name}-log-delivery",
            delivery_source_name=source.name,
            delivery_destination_arn=destination.arn,
            region=CLOUDFRONT_REGION,
            tags=tags(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[delivery_policy]),
        )

        self.domain_name = dist.domain_name
        self.hosted_zone_id = dist.hosted_zone_id
        self.distribution_arn = dist.arn
        self.register_outputs({"domain_name": self.domain_name, "distribution_arn": self.distribution_arn})
