"""Network: subnet math (pure) and the declared VPC (mocks)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from shop_platform.config import ConfigError, NetworkConfig
from shop_platform.context import StackContext
from shop_platform.network import Network, NetworkArgs, plan_subnets

from tests.platform.conftest import section
from tools.offline import Recording

AZS3 = ("eu-west-1a", "eu-west-1b", "eu-west-1c")


@pytest.mark.parametrize("cidr", ["10.20.0.0/16", "10.0.0.0/18", "172.16.0.0/20"])
def test_subnets_never_overlap_and_stay_inside_the_vpc(cidr: str) -> None:
    """Overlapping or out-of-VPC subnets fail at apply time after half the network exists; prove it here."""
    plan = plan_subnets(cidr, 3)
    nets = [ipaddress.IPv4Network(c) for c in plan.all()]
    vpc = ipaddress.IPv4Network(cidr)
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_adding_a_third_az_never_renumbers_the_first_two() -> None:
    """Growing dev from 2 to 3 AZs must not replace existing subnets (that would recreate nodes and DBs)."""
    two, three = plan_subnets("10.20.0.0/16", 2), plan_subnets("10.20.0.0/16", 3)
    assert three.private[:2] == two.private
    assert three.public[:2] == two.public
    assert three.isolated[:2] == two.isolated


def test_node_tier_gets_the_largest_subnets() -> None:
    """Pods take VPC addresses (VPC CNI): the private tier must be the biggest or pods stop scheduling."""
    plan = plan_subnets("10.20.0.0/16", 3)
    assert (
        ipaddress.IPv4Network(plan.private[0]).num_addresses > 4 * ipaddress.IPv4Network(plan.public[0]).num_addresses
    )


def _build(ctx: StackContext, nat: str, azs: tuple[str, ...] = AZS3) -> Callable[[], object]:
    config = section(NetworkConfig, ctx, cidr="10.20.0.0/16", azCount=len(azs), natGateways=nat)
    return lambda: Network("net", NetworkArgs(ctx=ctx, config=config, availability_zones=azs, cluster_name="shop-test"))


def test_prod_gets_one_nat_per_az_dev_one(
    run: Callable[..., Recording], dev_ctx: StackContext, prod_ctx: StackContext
) -> None:
    """One NAT per AZ in prod so an AZ outage cannot cut the other AZs' egress; one in dev to save cost."""
    prod = run(_build(prod_ctx, "per_az"), stack="prod")
    assert len(prod.of_type("aws:ec2/natGateway:NatGateway")) == 3
    dev = run(_build(dev_ctx, "single", AZS3[:2]))
    assert len(dev.of_type("aws:ec2/natGateway:NatGateway")) == 1
    # Every private route table still routes out (through the single NAT).
    assert len([r for r in dev.of_type("aws:ec2/route:Route") if "natGatewayId" in r.inputs]) == 2


def test_prod_refuses_a_single_nat(prod_ctx: StackContext) -> None:
    """Secure/reliable defaults are enforced by the section the args take, not left to the caller."""
    with pytest.raises(ConfigError, match="NAT gateway per AZ"):
        section(NetworkConfig, prod_ctx, natGateways="single")


def test_no_subnet_hands_out_public_ips_and_isolated_tier_has_no_route_out(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """Only the ALB may be reachable from the internet; databases must not even have a path out."""
    rec = run(_build(dev_ctx, "single"))
    subnets = rec.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 9
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    isolated_rt = rec.named("net-isolated-rt")
    assert not [r for r in rec.of_type("aws:ec2/route:Route") if r.parent and "isolated" in r.name]
    assocs = [a for a in rec.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation") if "isolated" in a.name]
    assert len(assocs) == 3
    assert all(a.inputs["routeTableId"] == f"{isolated_rt.name}-id" for a in assocs)


def test_default_security_group_is_emptied_and_flow_logs_are_encrypted(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """FSBP EC2.2 (default SG allows nothing) and EC2.6 (flow logs), with logs encrypted by our own key."""
    rec = run(_build(dev_ctx, "single"))
    dsg = rec.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert dsg.inputs.get("ingress", []) == []
    assert dsg.inputs.get("egress", []) == []
    flow = rec.one("aws:ec2/flowLog:FlowLog")
    assert flow.inputs["trafficType"] == "ALL"
    group = rec.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["kmsKeyId"].startswith("arn:aws:kms:")
    assert group.inputs["retentionInDays"] == 30  # network.flowLogRetentionDays, dev's default
    assert rec.one("aws:kms/key:Key").inputs["enableKeyRotation"] is True


def test_subnets_carry_the_tags_load_balancers_need(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """Without role/elb tags the AWS Load Balancer Controller cannot find subnets for load balancers."""
    rec = run(_build(dev_ctx, "single"))
    public = [s for s in rec.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "public"]
    assert all(s.inputs["tags"]["kubernetes.io/role/elb"] == "1" for s in public)
