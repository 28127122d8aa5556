"""Build, in moto, the account shape the Pulumi program declares for a stack (the parts ``verify`` reads):
ALB with an HTTP->HTTPS redirect and a TLS listener, target group, web ACL on the ALB, hosted zone, HTTPS
health check on /healthz, PRIMARY/SECONDARY failover records, Shield protections, one encrypted private
PostgreSQL per catalog service that owns data, and the EKS cluster. Returns the stack outputs as
``pulumi stack output --json`` would print them."""

from __future__ import annotations

import uuid
from typing import Any

from services import catalog
from tools.ops.verify import expectations_from_stack

DOMAIN = "shop.example.com"
API = f"api.{DOMAIN}"
CLOUDFRONT_ZONE = "Z2FDTNDATAQYW2"


def build_account(
    session: Any, *, stack: str = "prod", eks_version: str | None = None, region: str = "eu-west-1", shield: bool = True
) -> dict[str, Any]:
    """``eks_version`` defaults to what ``Pulumi.<stack>.yaml`` pins (what ``pulumi up`` would create)."""
    eks_version = eks_version or expectations_from_stack(stack).eks_version
    ec2, elbv2 = session.client("ec2", region_name=region), session.client("elbv2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=f"{region}{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate("ab")
    ]
    sg = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc)["GroupId"]

    cert = session.client("acm", region_name=region).request_certificate(DomainName=API)["CertificateArn"]
    alb = elbv2.create_load_balancer(
        Name=f"shop-{stack}", Subnets=subnets, SecurityGroups=[sg], Scheme="internet-facing", Type="application"
    )["LoadBalancers"][0]
    tg = elbv2.create_target_group(
        Name=f"shop-{stack}-gateway", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip", HealthCheckPath="/healthz"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=alb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}
        ],
    )
    elbv2.create_listener(
        LoadBalancerArn=alb["LoadBalancerArn"],
        Protocol="HTTPS",
        Port=443,
        SslPolicy="ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        Certificates=[{"CertificateArn": cert}],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )

    wafv2 = session.client("wafv2", region_name=region)
    visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "api"}
    acl = wafv2.create_web_acl(
        Name=f"shop-{stack}-api",
        Scope="REGIONAL",
        DefaultAction={"Allow": {}},
        VisibilityConfig=visibility,
        Rules=[
            {
                "Name": "AWSManagedRulesCommonRuleSet",
                "Priority": 1,
                "OverrideAction": {"None": {}},
                "VisibilityConfig": visibility,
                "Statement": {
                    "ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": "AWSManagedRulesCommonRuleSet"}
                },
            }
        ],
    )["Summary"]
    wafv2.associate_web_acl(WebACLArn=acl["ARN"], ResourceArn=alb["LoadBalancerArn"])
    wafv2.put_logging_configuration(
        LoggingConfiguration={
            "ResourceArn": acl["ARN"],
            "LogDestinationConfigs": [f"arn:aws:logs:{region}:123456789012:log-group:aws-waf-logs-shop-{stack}"],
            "RedactedFields": [{"SingleHeader": {"Name": "authorization"}}, {"SingleHeader": {"Name": "cookie"}}],
        }
    )

    route53 = session.client("route53", region_name="us-east-1")
    zone = route53.create_hosted_zone(Name=DOMAIN, CallerReference=str(uuid.uuid4()))["HostedZone"]["Id"]
    zone_id = zone.split("/")[-1]
    hc = route53.create_health_check(
        CallerReference=str(uuid.uuid4()),
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": alb["DNSName"],
            "Port": 443,
            "ResourcePath": "/healthz",
            "RequestInterval": 30,
            "FailureThreshold": 3,
            "EnableSNI": True,
        },
    )["HealthCheck"]["Id"]
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": API,
                        "Type": "A",
                        "SetIdentifier": "primary",
                        "Failover": "PRIMARY",
                        "HealthCheckId": hc,
                        "AliasTarget": {
                            "HostedZoneId": alb["CanonicalHostedZoneId"],
                            "DNSName": alb["DNSName"],
                            "EvaluateTargetHealth": True,
                        },
                    },
                },
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": API,
                        "Type": "A",
                        "SetIdentifier": "secondary",
                        "Failover": "SECONDARY",
                        "AliasTarget": {
                            "HostedZoneId": CLOUDFRONT_ZONE,
                            "DNSName": "d111111abcdef8.cloudfront.net",
                            "EvaluateTargetHealth": False,
                        },
                    },
                },
            ]
        },
    )

    if shield:
        shield_client = session.client("shield", region_name="us-east-1")
        shield_client.create_subscription()
        shield_client.create_protection(Name=f"shop-{stack}-alb", ResourceArn=alb["LoadBalancerArn"])
        shield_client.create_protection(
            Name=f"shop-{stack}-zone", ResourceArn=f"arn:aws:route53:::hostedzone/{zone_id}"
        )

    rds = session.client("rds", region_name=region)
    endpoints = {}
    for svc in catalog.database_services():
        db = rds.create_db_instance(
            DBInstanceIdentifier=f"{stack}-{svc.name}",
            Engine="postgres",
            EngineVersion="17.6",
            DBInstanceClass="db.m7g.large",
            AllocatedStorage=50,
            MasterUsername="shop_admin",
            ManageMasterUserPassword=True,
            StorageEncrypted=True,
            PubliclyAccessible=False,
            MultiAZ=True,
            DeletionProtection=True,
            DBName=svc.database_name,
        )["DBInstance"]
        endpoints[svc.name] = rds.describe_db_instances(DBInstanceIdentifier=db["DBInstanceIdentifier"])["DBInstances"][
            0
        ]["Endpoint"]["Address"]

    eks = session.client("eks", region_name=region)
    eks.create_cluster(
        name=f"shop-{stack}",
        version=eks_version,
        roleArn="arn:aws:iam::123456789012:role/cluster-control-plane-role",
        resourcesVpcConfig={"subnetIds": subnets, "endpointPrivateAccess": True, "endpointPublicAccess": False},
    )
    return {
        "apiUrl": f"https://{API}",
        "clusterName": f"shop-{stack}",
        "databaseEndpoints": endpoints,
        "webAclArn": acl["ARN"],
        "healthCheckId": hc,
        "targetGroupArn": tg,
        "zoneId": zone_id,
        "kubeconfig": "[secret]",
        "repositoryUrls": {},
        "databaseRoleArns": {},
    }
