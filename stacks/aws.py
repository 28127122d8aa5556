"""The AWS composition (dev and prod): network -> cluster -> databases -> zone -> edge -> DNS -> Shield.

Images come from the shared registry (``kubernetes.imageRegistry``, the ``registry`` stack), by digest.

Every per-service resource comes from ``services.catalog``: no service is named here.
Dependency notes for ``pulumi destroy`` (see platform/README.md): the cluster depends on the NAT routes,
Kubernetes objects go through ``cluster.k8s_provider`` (which depends on node groups and add-ons), so
Pulumi deletes Kubernetes objects, then add-ons and nodes, then the cluster, then the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import pulumi
import pulumi_aws as aws_sdk
from shop_platform import versions
from shop_platform.cluster import Cluster, ClusterArgs
from shop_platform.config import StackConfig
from shop_platform.context import StackContext
from shop_platform.databases import Databases, DatabasesArgs
from shop_platform.dbbootstrap import DatabaseBootstrap, DatabaseBootstrapArgs
from shop_platform.dns import ApiDns, ApiDnsArgs, Zone, ZoneArgs
from shop_platform.edge import Edge, EdgeArgs
from shop_platform.images import pins_of, repository_urls
from shop_platform.k8s.components import AwsInputs, deploy_kubernetes_layer
from shop_platform.k8s.spec import LayerSpec
from shop_platform.k8s.stackconfig import layer_spec_for_eks
from shop_platform.network import Network, NetworkArgs
from shop_platform.shield import ShieldArgs, ShieldProtections
from shop_platform.storage import SecureBucket, SecureBucketArgs
from shop_platform.tags import Tagger

from services import catalog


def build(cfg: StackConfig, today: date | None = None) -> Mapping[str, Any]:
    """Declare the whole AWS platform for one stack and return its stack outputs.

    ``today`` (default: the real date) is the day the pinned versions' support windows are judged on: the
    preview and the offline plan warn when the cluster minor or the RDS major is near or past its end of
    standard support."""
    for warning in versions.support_warnings(cfg.cluster.version, today or date.today()):
        pulumi.log.warn(warning)
    identity = aws_sdk.get_caller_identity()
    ctx = StackContext(
        account_id=identity.account_id,
        region=cfg.region,
        prod=cfg.is_prod,
        tags=Tagger(stack=cfg.stack, owner=cfg.owner, environment=cfg.environment),
    )
    # Standard AZs only: an account that opted in to Local Zones gets them from state=available too, and EKS
    # control-plane subnets and RDS subnet groups cannot use them.
    zones = aws_sdk.get_availability_zones(
        state="available",
        filters=[aws_sdk.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
    ).names
    if len(zones) < cfg.network.az_count:
        raise ValueError(f"{cfg.region} has {len(zones)} available AZs, network.azCount wants {cfg.network.az_count}")

    network = Network(
        "network",
        NetworkArgs(
            ctx=ctx,
            config=cfg.network,
            availability_zones=tuple(zones[: cfg.network.az_count]),
            cluster_name=cfg.cluster_name,
        ),
    )

    cluster = Cluster(
        "cluster",
        ClusterArgs(
            ctx=ctx,
            cluster_name=cfg.cluster_name,
            config=cfg.cluster,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            network_dependencies=network.egress,
        ),
    )

    databases = Databases(
        "databases",
        DatabasesArgs(
            ctx=ctx,
            services=catalog.database_services(),
            vpc_id=network.vpc_id,
            isolated_subnet_ids=network.isolated_subnet_ids,
            cluster_security_group_id=cluster.cluster_security_group_id,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            config=cfg.databases,
            log_retention_days=cfg.cluster.log_retention_days,
        ),
    )

    zone = Zone(
        "zone",
        ZoneArgs(
            ctx=ctx, domain=cfg.domain, create=cfg.create_zone, query_log_retention_days=cfg.edge.log_retention_days
        ),
    )

    # S3 server access logs of every other bucket (FSBP S3.9); it does not log itself (that would loop).
    access_logs = SecureBucket(
        "access-logs",
        SecureBucketArgs(
            ctx=ctx, sse_algorithm="AES256", expire_days=cfg.edge.log_retention_days, receives_access_logs=True
        ),
    )

    edge = Edge(
        "edge",
        EdgeArgs(
            ctx=ctx,
            api_domain=cfg.api_domain,
            zone_id=zone.zone_id,
            vpc_id=network.vpc_id,
            public_subnet_ids=network.public_subnet_ids,
            cluster_security_group_id=cluster.cluster_security_group_id,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            config=cfg.edge,
            access_log_bucket=access_logs.bucket_name,
        ),
    )

    api_dns = ApiDns(
        "dns",
        ApiDnsArgs(
            ctx=ctx,
            api_domain=cfg.api_domain,
            zone_id=zone.zone_id,
            alb_dns_name=edge.alb_dns_name,
            alb_zone_id=edge.alb_zone_id,
            config=cfg.edge,
            access_log_bucket=access_logs.bucket_name,
        ),
    )

    if cfg.edge.shield_advanced:
        ShieldProtections(
            "shield",
            ShieldArgs(
                ctx=ctx,
                alb_arn=edge.alb_arn,
                zone_arn=zone.zone_arn,
                distribution_arn=api_dns.maintenance_distribution_arn,
                health_check_arn=api_dns.health_check_arn,
            ),
        )

    # Each service's own database role, created with the master credential by a Job per database, before the
    # services start (shop_platform.dbbootstrap); the Jobs run the image the service is deployed with.
    layer = layer_spec_for_eks(cfg)
    repositories = repository_urls(cfg.kubernetes.image_registry)  # the shared registry (the registry stack)
    db_services = catalog.database_services()
    bootstrap = DatabaseBootstrap(
        "db-bootstrap",
        DatabaseBootstrapArgs(
            services=db_services,
            region=cfg.region,
            vpc_cidr=cfg.network.cidr,
            database_cidrs=layer.database_cidrs,
            hosts=databases.endpoints,
            master_secret_arns=databases.master_secret_arns,
            bootstrap_role_arns=databases.bootstrap_role_arns,
            images={s.name: pulumi.Output.concat(repositories[s.name], _image_ref(layer, s.name)) for s in db_services},
        ),
        pulumi.ResourceOptions(providers=[cluster.k8s_provider]),
    )

    # The Kubernetes layer (charts, gateway, observability, logging) through the cluster's provider, so destroy
    # removes it while nodes and controllers still run (platform/README.md, destroy order).
    kube = deploy_kubernetes_layer(
        layer,
        AwsInputs(
            repository_urls=repositories,
            database_hosts=databases.endpoints,
            database_users=databases.users,
            database_role_arns=databases.role_arns,
            database_ready=bootstrap.jobs,
            target_group_arn=edge.target_group_arn,
            lb_controller_role_arn=edge.lb_controller_role_arn,
            autoscaler_role_arn=cluster.autoscaler_role_arn,
            cluster_name=cluster.cluster_name,
            vpc_id=network.vpc_id,
            volumes_kms_key_arn=cluster.volumes_kms_key_arn,
        ),
        pulumi.ResourceOptions(providers=[cluster.k8s_provider]),
    )

    return {
        **kube,
        "apiUrl": api_dns.api_url,
        "clusterName": cluster.cluster_name,
        "kubeconfig": cluster.kubeconfig,  # secret
        "databaseEndpoints": databases.endpoints,
        "databaseRoleArns": databases.role_arns,
        "databaseUsers": databases.users,
        "repositoryUrls": repositories,
        "imagePins": pins_of(cfg.kubernetes),  # what runs: `python -m shop_platform.images pins` reads it back
        "webAclArn": edge.web_acl_arn,
        "healthCheckId": api_dns.health_check_id,
        "targetGroupArn": edge.target_group_arn,
        "loadBalancerArn": edge.alb_arn,  # prod destroy runbook: deletion protection is turned off by ARN
        "loadBalancerControllerRoleArn": edge.lb_controller_role_arn,
        "clusterAutoscalerRoleArn": cluster.autoscaler_role_arn,
        "zoneId": zone.zone_id,
    }


def _image_ref(layer: LayerSpec, service: str) -> str:
    """``:<tag>@<digest>`` when the stack pins the service's image by digest, else ``:<tag>`` (as the services'
    chart does, charts/service/templates/_helpers.tpl)."""
    digest = layer.kubernetes.image_digests.get(service)
    return f":{layer.kubernetes.image_tag}@{digest}" if digest else f":{layer.kubernetes.image_tag}"


__all__ = ["build"]
