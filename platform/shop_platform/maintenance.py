"""Maintenance site: S3 + CloudFront answering every request with 503 and an RFC 9457 problem document.

It is the SECONDARY target of ``api.<domain>``'s failover record, so while the ALB is unhealthy clients get
a clear, machine-readable "the shop is in maintenance" (and ``Retry-After``) instead of a timeout.

How the 503 is produced without code at the edge: the bucket holds one object, ``maintenance/problem.json``.
Every other path is missing, and S3 answers a missing key behind Origin Access Control with 403; CloudFront
maps 403/404/405 to status 503 with that document as the body (``Content-Type`` comes from the object's
metadata). Only a direct request for ``/maintenance/problem.json`` itself gets 200.
CloudFront only takes certificates from us-east-1, so this site has its own certificate there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from shop_platform import versions
from shop_platform.context import CERTIFICATE_VALIDATION_TIMEOUT, StackContext
from shop_platform.storage import SecureBucket, SecureBucketArgs

CLOUDFRONT_REGION = "us-east-1"
PROBLEM_KEY = "maintenance/problem.json"
# AWS managed cache policy "CachingDisabled": a maintenance answer must never outlive the maintenance.
CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
RETRY_AFTER_SECONDS = 120


def maintenance_problem(api_domain: str) -> dict[str, Any]:
    """The body clients receive while the shop is down (shape of the API contract's errors)."""
    return {"type": f"https://{api_domain}/problems/maintenance", "title": "Service Unavailable", "status": 503,
            "detail": "The shop is in maintenance. Please retry in a few minutes.", "instance": "/",
            "request_id": None}


def cloudfront_read_grant(account_id: str, key_prefix: str) -> Any:
    def grants(bucket_arn: str) -> list[dict[str, Any]]:
        return [{"Sid": "CloudFrontReadsMaintenancePage", "Effect": "Allow",
                 "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
                 "Resource": f"{bucket_arn}/{key_prefix}*",
                 "Condition": {"StringLike": {"AWS:SourceArn": f"arn:aws:cloudfront::{account_id}:distribution/*"}}}]
    return grants


@dataclass(frozen=True, slots=True)
class MaintenanceSiteArgs:
    ctx: StackContext
    api_domain: str
    zone_id: pulumi.Input[str]


class MaintenanceSite(pulumi.ComponentResource):
    """Exposes the distribution's domain name, hosted zone id (for alias records) and ARN."""

    domain_name: pulumi.Output[str]
    hosted_zone_id: pulumi.Output[str]
    distribution_arn: pulumi.Output[str]

    def __init__(self, name: str, args: MaintenanceSiteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:maintenance:MaintenanceSite", name, None, opts)
        ctx, tags = args.ctx, args.ctx.tags
        child = pulumi.ResourceOptions(parent=self)

        cert = aws.acm.Certificate(f"{name}-cert", domain_name=args.api_domain, validation_method="DNS",
                                   region=CLOUDFRONT_REGION, tags=tags(), opts=child)
        option = cert.domain_validation_options.apply(lambda o: o[0])
        record = aws.route53.Record(f"{name}-cert-validation", zone_id=args.zone_id,
                                    name=option.resource_record_name, type=option.resource_record_type,
                                    records=[option.resource_record_value], ttl=300, allow_overwrite=True,
                                    opts=child)
        validated = aws.acm.CertificateValidation(f"{name}-cert-validated", certificate_arn=cert.arn,
                                                  validation_record_fqdns=[record.fqdn], region=CLOUDFRONT_REGION,
                                                  opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                                                      custom_timeouts=pulumi.CustomTimeouts(
                                                          create=CERTIFICATE_VALIDATION_TIMEOUT))))

        bucket = SecureBucket(f"{name}-site", SecureBucketArgs(
            ctx=ctx, sse_algorithm="AES256", expire_days=3653,
            grants=cloudfront_read_grant(ctx.account_id, "maintenance/")), opts=child)
        aws.s3.BucketObjectv2(f"{name}-problem", bucket=bucket.bucket_name, key=PROBLEM_KEY,
                              content=json.dumps(maintenance_problem(args.api_domain)),
                              content_type="application/problem+json", cache_control="no-store",
                              tags=tags(), opts=child)
        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac", name=f"shop-{ctx.tags.stack}-maintenance", origin_access_control_origin_type="s3",
            signing_behavior="always", signing_protocol="sigv4", description="maintenance bucket", opts=child)
        headers = aws.cloudfront.ResponseHeadersPolicy(
            f"{name}-headers", name=f"shop-{ctx.tags.stack}-maintenance",
            custom_headers_config={"items": [
                {"header": "Retry-After", "value": str(RETRY_AFTER_SECONDS), "override": True}]},
            security_headers_config={
                "strict_transport_security": {"access_control_max_age_sec": 63072000, "include_subdomains": True,
                                              "override": True},
                "content_type_options": {"override": True}}, opts=child)
        error_pages = [aws.cloudfront.DistributionCustomErrorResponseArgs(
            error_code=code, response_code=503, response_page_path=f"/{PROBLEM_KEY}", error_caching_min_ttl=10)
            for code in (403, 404, 405)]
        dist = aws.cloudfront.Distribution(
            f"{name}-cdn", enabled=True, comment=f"{args.api_domain} maintenance (failover secondary)",
            aliases=[args.api_domain], price_class="PriceClass_100", http_version="http2and3",
            origins=[aws.cloudfront.DistributionOriginArgs(
                origin_id="maintenance", domain_name=bucket.regional_domain_name, origin_access_control_id=oac.id)],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id="maintenance", viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
                cached_methods=["GET", "HEAD"], cache_policy_id=CACHING_DISABLED_POLICY_ID,
                response_headers_policy_id=headers.id, compress=True),
            custom_error_responses=error_pages,
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")),
            viewer_certificate=aws.cloudfront.DistributionViewerCertificateArgs(
                acm_certificate_arn=validated.certificate_arn, ssl_support_method="sni-only",
                minimum_protocol_version=versions.CLOUDFRONT_MIN_PROTOCOL),
            tags=tags(), opts=child)
        self.domain_name = dist.domain_name
        self.hosted_zone_id = dist.hosted_zone_id
        self.distribution_arn = dist.arn
        self.register_outputs({"domain_name": self.domain_name, "distribution_arn": self.distribution_arn})
