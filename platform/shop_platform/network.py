"""Network: one VPC over 2-3 AZs with public, private (nodes) and isolated (databases) subnets.

Practices encoded:
- Three tiers. Only the ALB and the NAT gateways live in public subnets; nodes sit in private subnets with
  egress through NAT; databases sit in isolated subnets whose route table has no route out of the VPC.
- No subnet assigns public IPs on launch; the VPC's default security group is emptied (FSBP EC2.2).
- NAT per AZ in prod (an AZ outage must not cut the other AZs' egress), one in dev (cost).
- VPC flow logs (FSBP EC2.6) to a KMS-encrypted CloudWatch log group with a retention.
- Subnet tags the AWS Load Balancer Controller and EKS use to find public/internal subnets.
- VPC endpoints for the AWS APIs the workloads use: S3 (gateway: ECR image layers), and interface endpoints
  with private DNS in the private subnets for ECR (api, dkr), Secrets Manager, STS (IRSA) and CloudWatch
  Logs. AWS API traffic stays inside the VPC and off the NAT bill, and the pods' HTTPS egress can be
  limited to the VPC (the services' NetworkPolicy ``awsApis``) instead of the whole internet.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shop_platform import iam
from shop_platform.config import NetworkConfig
from shop_platform.context import StackContext
from shop_platform.storage import encryption_key

# Interface endpoints (service name suffix after com.amazonaws.<region>.): what nodes and pods call.
INTERFACE_ENDPOINTS: tuple[str, ...] = ("ecr.api", "ecr.dkr", "secretsmanager", "sts", "logs")
HTTPS_PORT = 443


@dataclass(frozen=True, slots=True)
class SubnetPlan:
    public: tuple[str, ...]
    private: tuple[str, ...]
    isolated: tuple[str, ...]

    def all(self) -> tuple[str, ...]:
        return self.public + self.private + self.isolated


def endpoint_cidrs(vpc_cidr: str) -> tuple[str, ...]:
    """Where the interface endpoints' addresses can be: the private tier, carved for 3 AZs whatever the
    stack uses (so the answer does not depend on the AZ count). HTTPS egress to AWS APIs goes here only."""
    return plan_subnets(vpc_cidr, 3).private


def plan_subnets(vpc_cidr: str, az_count: int) -> SubnetPlan:
    """Split the VPC: three quarters for private (node/pod) subnets, the last quarter for public+isolated.

    Pods take VPC addresses (VPC CNI), so the node tier gets the big blocks: a /16 yields /18 private
    subnets (16k addresses each) and /21 public and isolated ones. Always carved for 3 AZs, so adding the
    third AZ later never renumbers the first two.
    """
    if not 1 <= az_count <= 3:
        raise ValueError(f"az_count must be 1..3, got {az_count}")
    vpc = ipaddress.IPv4Network(vpc_cidr, strict=True)
    quarters = list(vpc.subnets(prefixlen_diff=2))
    public_half, isolated_half = quarters[3].subnets(prefixlen_diff=1)
    public = list(public_half.subnets(prefixlen_diff=2))
    isolated = list(isolated_half.subnets(prefixlen_diff=2))
    return SubnetPlan(
        public=tuple(str(n) for n in public[:az_count]),
        private=tuple(str(n) for n in quarters[:az_count]),
        isolated=tuple(str(n) for n in isolated[:az_count]),
    )


@dataclass(frozen=True, slots=True)
class NetworkArgs:
    ctx: StackContext
    # The stack's validated ``network`` section (shop_platform.config.NetworkConfig: a private /16../20, and
    # prod's NAT gateway per AZ, are checked there, once).
    config: NetworkConfig
    availability_zones: tuple[str, ...]
    cluster_name: str

    def __post_init__(self) -> None:
        if not 2 <= len(self.availability_zones) <= 3 or len(set(self.availability_zones)) != len(
            self.availability_zones
        ):
            raise ValueError(f"NetworkArgs: need 2-3 distinct AZs, got {self.availability_zones}")


class Network(pulumi.ComponentResource):
    """VPC, subnets, routing, NAT and flow logs. Exposes subnet ids per tier and the VPC id."""

    vpc_id: pulumi.Output[str]
    vpc_cidr: str
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    isolated_subnet_ids: list[pulumi.Output[str]]
    # Resources whose deletion must wait for the cluster's: nodes lose egress (and their ENIs) otherwise.
    egress: list[pulumi.Resource]
    endpoints: list[aws.ec2.VpcEndpoint]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:network:Network", name, None, opts)
        ctx, tags = args.ctx, args.ctx.tags
        child = pulumi.ResourceOptions(parent=self)
        azs = args.availability_zones
        plan = plan_subnets(args.config.cidr, len(azs))

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.config.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(Name=f"{name}-vpc"),
            opts=child,
        )
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=tags(Name=f"{name}-default-deny"),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags(Name=f"{name}-igw"), opts=child)

        def subnet(tier: str, i: int, cidr: str, extra: dict[str, str]) -> aws.ec2.Subnet:
            return aws.ec2.Subnet(
                f"{name}-{tier}-{i}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=azs[i],
                map_public_ip_on_launch=False,
                tags=tags(Name=f"{name}-{tier}-{azs[i]}", tier=tier, **extra),
                opts=child,
            )

        public = [subnet("public", i, c, {"kubernetes.io/role/elb": "1"}) for i, c in enumerate(plan.public)]
        private = [
            subnet(
                "private",
                i,
                c,
                {"kubernetes.io/role/internal-elb": "1", f"kubernetes.io/cluster/{args.cluster_name}": "shared"},
            )
            for i, c in enumerate(plan.private)
        ]
        isolated = [subnet("isolated", i, c, {}) for i, c in enumerate(plan.isolated)]

        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags=tags(Name=f"{name}-public"), opts=child)
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child,
        )
        for i, s in enumerate(public):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-rta-{i}", subnet_id=s.id, route_table_id=public_rt.id, opts=child
            )

        nat_count = len(azs) if args.config.nat_gateways == "per_az" else 1
        nats = []
        for i in range(nat_count):
            eip = aws.ec2.Eip(f"{name}-nat-eip-{i}", domain="vpc", tags=tags(Name=f"{name}-nat-{azs[i]}"), opts=child)
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public[i].id,
                    tags=tags(Name=f"{name}-nat-{azs[i]}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )

        self.egress = []
        for i, s in enumerate(private):
            rt = aws.ec2.RouteTable(
                f"{name}-private-rt-{i}", vpc_id=vpc.id, tags=tags(Name=f"{name}-private-{azs[i]}"), opts=child
            )
            route = aws.ec2.Route(
                f"{name}-private-default-{i}",
                route_table_id=rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nats[i % nat_count].id,
                opts=child,
            )
            assoc = aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{i}", subnet_id=s.id, route_table_id=rt.id, opts=child
            )
            self.egress += [route, assoc]

        private_routes = [r for r in self.egress if isinstance(r, aws.ec2.Route)]
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{ctx.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[r.route_table_id for r in private_routes],
            tags=tags(Name=f"{name}-s3"),
            opts=child,
        )
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=vpc.id,
            description="AWS API interface endpoints: HTTPS from the VPC",
            tags=tags(Name=f"{name}-endpoints"),
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-from-vpc-443",
            security_group_id=endpoint_sg.id,
            ip_protocol="tcp",
            from_port=HTTPS_PORT,
            to_port=HTTPS_PORT,
            cidr_ipv4=args.config.cidr,
            description="HTTPS from the VPC",
            tags=tags(),
            opts=child,
        )
        self.endpoints = [
            aws.ec2.VpcEndpoint(
                f"{name}-{svc.replace('.', '-')}-endpoint",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{ctx.region}.{svc}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private],
                security_group_ids=[endpoint_sg.id],
                tags=tags(Name=f"{name}-{svc}"),
                opts=child,
            )
            for svc in INTERFACE_ENDPOINTS
        ]
        # Nodes pull images and pods get credentials through them until the cluster is gone (destroy order).
        self.egress += self.endpoints

        # Isolated tier: a route table with only the implicit local route. Nothing leaves the VPC.
        isolated_rt = aws.ec2.RouteTable(
            f"{name}-isolated-rt", vpc_id=vpc.id, tags=tags(Name=f"{name}-isolated"), opts=child
        )
        for i, s in enumerate(isolated):
            aws.ec2.RouteTableAssociation(
                f"{name}-isolated-rta-{i}", subnet_id=s.id, route_table_id=isolated_rt.id, opts=child
            )

        logs_key = encryption_key(
            f"{name}-flow-logs-key",
            ctx,
            f"{name} VPC flow logs",
            parent=self,
            service_grant=iam.logs_key_grant(ctx.account_id, ctx.region, ctx.partition),
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/shop/{ctx.tags.stack}/vpc-flow-logs",
            retention_in_days=args.config.flow_log_retention_days,
            kms_key_id=logs_key.arn,
            tags=tags(),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=json.dumps(
                iam.service_assume_role(
                    "vpc-flow-logs.amazonaws.com",
                    ctx.account_id,
                    f"arn:{ctx.partition}:ec2:{ctx.region}:{ctx.account_id}:vpc-flow-log/*",
                )
            ),
            tags=tags(),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-write",
            role=role.id,
            policy=log_group.arn.apply(lambda arn: json.dumps(iam.flow_log_writer(arn))),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=tags(),
            opts=child,
        )

        self.vpc_id = vpc.id
        self.vpc_cidr = args.config.cidr
        self.public_subnet_ids = [s.id for s in public]
        self.private_subnet_ids = [s.id for s in private]
        self.isolated_subnet_ids = [s.id for s in isolated]
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "isolated_subnet_ids": self.isolated_subnet_ids,
            }
        )
