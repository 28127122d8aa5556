"""Shield Advanced protections."""

from __future__ import annotations

from collections.abc import Callable

from shop_platform.context import StackContext
from shop_platform.shield import ShieldArgs, ShieldProtections

from tools.offline import Recording

ALB = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/edge-alb/1"
ZONE = "arn:aws:route53:::hostedzone/Z1"
CDN = "arn:aws:cloudfront::111122223333:distribution/E1"
CHECK = "arn:aws:route53:::healthcheck/hc-1"


def test_every_public_endpoint_is_protected_and_the_alb_uses_health_based_detection(
    run: Callable[..., Recording], prod_ctx: StackContext
) -> None:
    """A DDoS against any one of ALB, zone or maintenance CDN takes the shop down; tying the ALB protection to
    the Route 53 health check lets Shield detect attacks by their effect on health (fewer false positives)."""
    rec = run(
        lambda: ShieldProtections(
            "shield", ShieldArgs(ctx=prod_ctx, alb_arn=ALB, zone_arn=ZONE, distribution_arn=CDN, health_check_arn=CHECK)
        ),
        stack="prod",
    )
    protections = {p.inputs["resourceArn"]: p for p in rec.of_type("aws:shield/protection:Protection")}
    assert set(protections) == {ALB, ZONE, CDN}
    link = rec.one("aws:shield/protectionHealthCheckAssociation:ProtectionHealthCheckAssociation").inputs
    assert link == {"shieldProtectionId": protections[ALB].id, "healthCheckArn": CHECK}
    assert all(p.inputs["tags"]["stack"] == "prod" for p in protections.values())
