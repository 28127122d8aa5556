"""Shield Advanced protections for the public surface: ALB, hosted zone and maintenance distribution.

Enabled by ``edge.shieldAdvanced`` (required in prod). The subscription itself (a one-year commitment) is
an account-level decision taken outside this program; protections fail at apply time without it.
The ALB protection is tied to the Route 53 health check, so Shield's detection uses the application's
health (health-based detection: faster, fewer false positives).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shop_platform.context import StackContext


@dataclass(frozen=True, slots=True)
class ShieldArgs:
    ctx: StackContext
    alb_arn: pulumi.Input[str]
    zone_arn: pulumi.Input[str]
    distribution_arn: pulumi.Input[str]
    health_check_arn: pulumi.Input[str]


class ShieldProtections(pulumi.ComponentResource):
    def __init__(self, name: str, args: ShieldArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:shield:ShieldProtections", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.ctx.tags
        alb = aws.shield.Protection(
            f"{name}-alb", name=f"shop-{args.ctx.tags.stack}-alb", resource_arn=args.alb_arn, tags=tags(), opts=child
        )
        aws.shield.Protection(
            f"{name}-zone", name=f"shop-{args.ctx.tags.stack}-zone", resource_arn=args.zone_arn, tags=tags(), opts=child
        )
        aws.shield.Protection(
            f"{name}-maintenance",
            name=f"shop-{args.ctx.tags.stack}-maintenance",
            resource_arn=args.distribution_arn,
            tags=tags(),
            opts=child,
        )
        aws.shield.ProtectionHealthCheckAssociation(
            f"{name}-alb-health", shield_protection_id=alb.id, health_check_arn=args.health_check_arn, opts=child
        )
        self.register_outputs({})
