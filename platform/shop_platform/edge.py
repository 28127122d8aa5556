"""Edge: ACM certificate, ALB (TLS, redirect, access logs), WAFv2 web ACL, forwarding to NGINX Gateway.

Practices encoded (FSBP ELB/WAF controls in brackets):
- Certificate for ``api.<domain>`` validated by DNS in the stack's hosted zone (auto-renews).
- ALB in public subnets; HTTP listener only redirects to HTTPS [ELB.1]; TLS 1.2+/1.3 policy [ELB.17];
  invalid header fields dropped [ELB.4]; strictest desync mitigation [ELB.12]; HSTS added at the edge;
  access logs to a private, encrypted bucket [ELB.5]; deletion protection in prod [ELB.6].
- Its security group takes 80/443 from anywhere and may only talk to the cluster's security group on the
  gateway's port: the ALB is the one thing on the internet.
- WAFv2 web ACL [ELB.16, WAF.10]: AWS managed groups, a per-IP rate rule, a stricter login rule, metrics on
  every rule [WAF.12], logging [WAF.11] with the ``authorization`` header (and cookies) redacted. Rules are
  typed ``rules`` (drift-detected), not ``rule_json``.

Forwarding choice: an ``ip`` target group bound to the NGINX Gateway Fabric Service by the AWS Load Balancer
Controller's TargetGroupBinding, rather than attaching node groups to an ``instance`` target group:
- targets are the gateway pods themselves, so health checks and connection draining follow pods (a node
  with no gateway pod is never a target, and there is no extra NodePort/kube-proxy hop);
- Pulumi keeps owning the ALB, listeners, WAF association and the security-group rules: the controller only
  registers targets (its IAM role allows just that, on this one target group), and on destroy there is
  no controller-created load balancer or security group to leak;
- node groups can be replaced or autoscaled without re-attaching anything.
The TargetGroupBinding object itself is applied by the Kubernetes layer (``k8s.components.GatewayEdge``); it
omits ``spec.networking`` so the controller never edits security groups.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from shop_platform import firewall, iam, versions, waf
from shop_platform.certificate import DnsValidatedCertificate, DnsValidatedCertificateArgs
from shop_platform.config import EdgeConfig
from shop_platform.context import StackContext
from shop_platform.irsa import service_account_role
from shop_platform.storage import SecureBucket, SecureBucketArgs, encryption_key

HSTS = "max-age=63072000; includeSubDomains"


def alb_log_grants(elb_account_arn: str, account_id: str, prefix: str) -> Any:
    """Bucket-policy statements letting the regional ELB log-delivery account write this ALB's logs."""

    def grants(bucket_arn: str, _context: str) -> list[dict[str, Any]]:
        return [
            {
                "Sid": "AlbAccessLogs",
                "Effect": "Allow",
                "Principal": {"AWS": elb_account_arn},
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/{prefix}/AWSLogs/{account_id}/*",
            }
        ]

    return grants


@dataclass(frozen=True, slots=True)
class EdgeArgs:
    ctx: StackContext
    api_domain: str
    zone_id: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    cluster_security_group_id: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    # The stack's validated ``edge`` section (shop_platform.config.EdgeConfig): WAF limits, log retention.
    config: EdgeConfig
    # NGINX Gateway Fabric's data-plane port and the API's liveness path (see api-contract).
    gateway_port: int = 80
    health_check_path: str = "/healthz"
    # The stack's S3 server access-log bucket (FSBP S3.9) for the ALB log bucket.
    access_log_bucket: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if len(self.public_subnet_ids) < 2:
            raise ValueError("EdgeArgs: an ALB needs public subnets in >= 2 AZs")
        if not 1 <= self.gateway_port <= 65535:
            raise ValueError("EdgeArgs: gateway_port must be a TCP port")


class Edge(pulumi.ComponentResource):
    """The public entry point. Exposes the ALB (ARN, DNS name, zone), target group, web ACL and LBC role."""

    alb_arn: pulumi.Output[str]
    alb_dns_name: pulumi.Output[str]
    alb_zone_id: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    web_acl_arn: pulumi.Output[str]
    lb_controller_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:edge:Edge", name, None, opts)
        ctx, tags = args.ctx, args.ctx.tags
        child = pulumi.ResourceOptions(parent=self)

        cert = DnsValidatedCertificate(
            f"{name}-cert",
            DnsValidatedCertificateArgs(domain=args.api_domain, zone_id=args.zone_id, tags=tags()),
            child,
        )

        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            vpc_id=args.vpc_id,
            description="ALB: 80/443 from the internet, out to the gateway only",
            tags=tags(),
            opts=child,
        )
        firewall.declare(
            name,
            firewall.edge_flows(args.gateway_port),
            {"alb": alb_sg.id, "cluster": args.cluster_security_group_id},
            tags(),
            parent=self,
        )

        elb_account = aws.elb.get_service_account()
        logs = SecureBucket(
            f"{name}-alb-logs",
            SecureBucketArgs(
                ctx=ctx,
                sse_algorithm="AES256",  # ALB log delivery supports SSE-S3 only
                expire_days=args.config.log_retention_days,
                grants=alb_log_grants(elb_account.arn, ctx.account_id, "alb"),
                access_log_bucket=args.access_log_bucket,
            ),
            opts=child,
        )

        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            subnets=args.public_subnet_ids,
            security_groups=[alb_sg.id],
            drop_invalid_header_fields=True,
            desync_mitigation_mode="strictest",
            enable_deletion_protection=ctx.prod,
            enable_http2=True,
            idle_timeout=60,
            access_logs={"bucket": logs.bucket_name, "prefix": "alb", "enabled": True},
            tags=tags(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]),
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-gateway-tg",
            target_type="ip",
            port=args.gateway_port,
            protocol="HTTP",
            vpc_id=args.vpc_id,
            deregistration_delay=30,
            health_check={
                "path": args.health_check_path,
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 15,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            tags=tags(),
            opts=child,
        )
        aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=alb.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "status_code": "HTTP_301"}}
            ],
            tags=tags(),
            opts=child,
        )
        aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=alb.arn,
            port=443,
            protocol="HTTPS",
            certificate_arn=cert.certificate_arn,
            ssl_policy=versions.ALB_SSL_POLICY,
            default_actions=[{"type": "forward", "target_group_arn": target_group.arn}],
            routing_http_response_strict_transport_security_header_value=HSTS,
            tags=tags(),
            opts=child,
        )

        lbc_role = service_account_role(
            f"{name}-lb-controller-role",
            ctx,
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer=args.oidc_issuer,
            namespace="kube-system",
            service_account="aws-load-balancer-controller",
            parent=self,
            inline_policy=target_group.arn.apply(lambda arn: json.dumps(iam.target_group_binder(arn))),
        )

        waf_key = encryption_key(
            f"{name}-waf-logs-key",
            ctx,
            "WAF logs",
            parent=self,
            service_grant=iam.logs_key_grant(ctx.account_id, ctx.region, ctx.partition),
        )
        # WAF only logs to groups whose name starts with aws-waf-logs-.
        waf_logs = aws.cloudwatch.LogGroup(
            f"{name}-waf-logs",
            name=f"aws-waf-logs-shop-{ctx.tags.stack}",
            retention_in_days=args.config.log_retention_days,
            kms_key_id=waf_key.arn,
            tags=tags(),
            opts=child,
        )
        delivery = aws.cloudwatch.LogResourcePolicy(
            f"{name}-waf-logs-delivery",
            policy_name=f"waf-logs-delivery-{ctx.tags.stack}",
            policy_document=waf_logs.arn.apply(
                lambda arn: json.dumps(iam.log_delivery_policy(arn, ctx.account_id, ctx.region, ctx.partition))
            ),
            opts=child,
        )
        rules = waf.build_web_acl_rules(args.config)
        acl = aws.wafv2.WebAcl(
            f"{name}-web-acl",
            scope="REGIONAL",
            description=f"API of stack {ctx.tags.stack}",
            default_action={"allow": {}},
            rules=waf.web_acl_rule_args(rules),
            visibility_config={
                "cloudwatch_metrics_enabled": True,
                "metric_name": f"shop-{ctx.tags.stack}-api",
                "sampled_requests_enabled": True,
            },
            tags=tags(),
            opts=child,
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-web-acl-logging",
            resource_arn=acl.arn,
            log_destination_configs=[waf_logs.arn],
            redacted_fields=[{"single_header": {"name": h}} for h in waf.REDACTED_HEADERS],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[delivery]),
        )
        aws.wafv2.WebAclAssociation(f"{name}-web-acl-alb", resource_arn=alb.arn, web_acl_arn=acl.arn, opts=child)

        self.alb_arn = alb.arn
        self.alb_dns_name = alb.dns_name
        self.alb_zone_id = alb.zone_id
        self.target_group_arn = target_group.arn
        self.web_acl_arn = acl.arn
        self.lb_controller_role_arn = lbc_role.arn
        self.register_outputs(
            {
                "alb_arn": self.alb_arn,
                "alb_dns_name": self.alb_dns_name,
                "target_group_arn": self.target_group_arn,
                "web_acl_arn": self.web_acl_arn,
            }
        )
