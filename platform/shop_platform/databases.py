"""Databases: one RDS PostgreSQL instance per catalog service that owns data, and its IRSA role.

Practices encoded (FSBP RDS controls in brackets):
- Isolated subnets only, never publicly accessible [RDS.2, RDS.18]; one security group per database whose
  only ingress is 5432 from the cluster's security group.
- Storage, Performance Insights and the master secret encrypted with the database's own KMS key [RDS.3].
- ``manage_master_user_password``: RDS creates and rotates the password in Secrets Manager, so it is never
  in Pulumi state or config. Custom admin username [RDS.25].
- Parameter group forcing TLS (``rds.force_ssl``) [RDS.38], logging slow statements and connections.
- Backups >= 7 days [RDS.11], copy tags to snapshots [RDS.17], auto minor upgrades [RDS.13], enhanced
  monitoring [RDS.6], logs exported to CloudWatch [RDS.9], IAM database authentication available [RDS.10].
- Prod: multi-AZ [RDS.5], deletion protection [RDS.8], a final snapshot with a name unique per instance
  lifetime (a fixed name fails the second create/destroy cycle), automated backups kept after deletion, and
  the database's KMS key retained by ``pulumi destroy``: a snapshot whose key is deleted can never be
  restored. Dev deletes everything.
- RDS's own log groups (``/aws/rds/instance/<id>/postgresql`` and ``/upgrade``) are pre-created with a
  retention and a KMS key; RDS would otherwise create them unencrypted, never expiring, outside the state.
- No workload holds the master credential. Each service connects as its own role ``<service>_app``
  (``services.kit.dbroles``: owner of its schema only) with IAM database authentication: its IRSA role
  allows ``rds-db:connect`` as that one database user and nothing else. The master secret is readable by one
  IRSA role per database, the bootstrap Job's (``shop_platform.dbbootstrap``), which creates that role.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from services.catalog import Service
from services.kit.dbroles import app_role
from shop_platform import firewall, iam, versions
from shop_platform.config import DatabasesConfig
from shop_platform.context import StackContext
from shop_platform.irsa import service_account_role
from shop_platform.storage import encryption_key

POSTGRES_PORT = firewall.POSTGRES_PORT
ADMIN_USERNAME = "shop_admin"
RDS_LOG_EXPORTS = ("postgresql", "upgrade")
# Where the role-bootstrap Jobs run (shop_platform.dbbootstrap): one service account per database.
BOOTSTRAP_NAMESPACE = "shop-db-bootstrap"
# Parameters every instance gets. rds.force_ssl refuses plaintext connections.
POSTGRES_PARAMETERS: dict[str, str] = {
    "rds.force_ssl": "1",
    "log_connections": "1",
    "log_min_duration_statement": "500",
    "password_encryption": "scram-sha-256",
}


@dataclass(frozen=True, slots=True)
class DatabasesArgs:
    ctx: StackContext
    services: tuple[Service, ...]
    vpc_id: pulumi.Input[str]
    isolated_subnet_ids: Sequence[pulumi.Input[str]]
    cluster_security_group_id: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    # The stack's validated ``databases`` section (shop_platform.config.DatabasesConfig: size, backups, and
    # prod's multi-AZ and deletion protection are checked there, once).
    config: DatabasesConfig
    log_retention_days: int = 365
    namespace: str = "shop"
    bootstrap_namespace: str = BOOTSTRAP_NAMESPACE

    def __post_init__(self) -> None:
        if not self.services or any(not s.owns_database for s in self.services):
            raise ValueError("DatabasesArgs: services must be non-empty and all own a database")
        if len(self.isolated_subnet_ids) < 2:
            raise ValueError("DatabasesArgs: an RDS subnet group needs subnets in >= 2 AZs")


def _connect_policy(ctx: StackContext, user: str, resource_id: str) -> str:
    return json.dumps(
        iam.database_connect(iam.dbuser_arn(ctx.partition, ctx.region, ctx.account_id, resource_id, user))
    )


def bootstrap_service_account(svc: Service) -> str:
    """The service account of one database's role-bootstrap Job (the only reader of its master secret)."""
    return f"{svc.name}-db-bootstrap"


class Databases(pulumi.ComponentResource):
    """One encrypted, private PostgreSQL per service. Exposes endpoints, each service's database user and
    IRSA role (IAM auth), and for the bootstrap Jobs only: the master secret ARNs and their IRSA roles."""

    endpoints: dict[str, pulumi.Output[str]]
    users: dict[str, str]
    role_arns: dict[str, pulumi.Output[str]]
    master_secret_arns: dict[str, pulumi.Output[str]]
    bootstrap_role_arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: DatabasesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:databases:Databases", name, None, opts)
        ctx, tags = args.ctx, args.ctx.tags
        child = pulumi.ResourceOptions(parent=self)

        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args.isolated_subnet_ids,
            description="isolated subnets: no route out of the VPC",
            tags=tags(),
            opts=child,
        )
        params = aws.rds.ParameterGroup(
            f"{name}-postgres-params",
            family=versions.POSTGRES_PARAMETER_FAMILY,
            description="TLS forced, connections and slow statements logged",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name=k, value=v, apply_method="pending-reboot")
                for k, v in POSTGRES_PARAMETERS.items()
            ],
            tags=tags(),
            opts=child,
        )
        monitoring_role = aws.iam.Role(
            f"{name}-monitoring-role",
            assume_role_policy=json.dumps(iam.service_assume_role("monitoring.rds.amazonaws.com", ctx.account_id)),
            tags=tags(),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-monitoring-policy",
            role=monitoring_role.name,
            policy_arn=f"arn:{ctx.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
            opts=child,
        )

        logs_key = encryption_key(
            f"{name}-logs-key",
            ctx,
            "RDS PostgreSQL logs",
            parent=self,
            service_grant=iam.logs_key_grant(ctx.account_id, ctx.region, ctx.partition),
        )
        self.endpoints, self.users, self.role_arns = {}, {}, {}
        self.master_secret_arns, self.bootstrap_role_arns = {}, {}
        for svc in args.services:
            base = f"{name}-{svc.name}"
            stags = tags(svc.name)
            identifier = f"{ctx.tags.stack}-{svc.name}"
            key = encryption_key(
                f"{base}-key",
                ctx,
                f"{svc.name} database, its secret and PI",
                parent=self,
                service=svc.name,
                retain_on_delete=ctx.prod,
            )
            sg = aws.ec2.SecurityGroup(
                f"{base}-sg",
                vpc_id=args.vpc_id,
                description=f"{svc.name} database: 5432 from the cluster only",
                tags=stags,
                opts=child,
            )
            firewall.declare(
                base,
                firewall.database_flows(),
                {"database": sg.id, "cluster": args.cluster_security_group_id},
                stags,
                parent=self,
            )
            log_groups = [
                aws.cloudwatch.LogGroup(
                    f"{base}-{kind}-logs",
                    name=f"/aws/rds/instance/{identifier}/{kind}",
                    retention_in_days=args.log_retention_days,
                    kms_key_id=logs_key.arn,
                    tags=stags,
                    opts=child,
                )
                for kind in RDS_LOG_EXPORTS
            ]
            # A new suffix per instance lifetime: a replaced or re-created instance never collides with the
            # final snapshot an earlier one left behind (DBSnapshotAlreadyExists).
            snapshot_suffix = random.RandomId(
                f"{base}-final-snapshot-id", byte_length=4, keepers={"identifier": identifier}, opts=child
            )
            db = aws.rds.Instance(
                f"{base}-db",
                identifier=identifier,
                engine="postgres",
                engine_version=versions.POSTGRES_ENGINE_VERSION,
                instance_class=args.config.instance_class,
                allocated_storage=args.config.allocated_gib,
                max_allocated_storage=args.config.max_allocated_gib,
                storage_type="gp3",
                storage_encrypted=True,
                kms_key_id=key.arn,
                db_name=svc.database_name,
                username=ADMIN_USERNAME,
                port=POSTGRES_PORT,
                manage_master_user_password=True,
                master_user_secret_kms_key_id=key.arn,
                db_subnet_group_name=subnet_group.name,
                vpc_security_group_ids=[sg.id],
                publicly_accessible=False,
                parameter_group_name=params.name,
                multi_az=args.config.multi_az,
                deletion_protection=args.config.deletion_protection,
                skip_final_snapshot=not ctx.prod,
                final_snapshot_identifier=pulumi.Output.concat(identifier, "-final-", snapshot_suffix.hex)
                if ctx.prod
                else None,
                delete_automated_backups=not ctx.prod,
                backup_retention_period=args.config.backup_retention_days,
                copy_tags_to_snapshot=True,
                auto_minor_version_upgrade=True,
                iam_database_authentication_enabled=True,
                performance_insights_enabled=True,
                performance_insights_kms_key_id=key.arn,
                performance_insights_retention_period=7,
                monitoring_interval=60,
                monitoring_role_arn=monitoring_role.arn,
                enabled_cloudwatch_logs_exports=list(RDS_LOG_EXPORTS),
                apply_immediately=not ctx.prod,
                tags=stags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=log_groups),
            )
            secret_arn = db.master_user_secrets.apply(lambda s: s[0].secret_arn if s and s[0].secret_arn else "")
            user = app_role(svc.name)
            connect = db.resource_id.apply(functools.partial(_connect_policy, ctx, user))
            role = service_account_role(
                f"{base}-role",
                ctx,
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer=args.oidc_issuer,
                namespace=args.namespace,
                service_account=svc.name,
                parent=self,
                inline_policy=connect,
                service=svc.name,
            )
            master_read = pulumi.Output.all(secret_arn, key.arn).apply(
                lambda v: json.dumps(iam.secret_reader(v[0], v[1], ctx.region))
            )
            bootstrap = service_account_role(
                f"{base}-bootstrap-role",
                ctx,
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer=args.oidc_issuer,
                namespace=args.bootstrap_namespace,
                service_account=bootstrap_service_account(svc),
                parent=self,
                inline_policy=master_read,
                service=svc.name,
            )
            self.endpoints[svc.name] = db.address
            self.users[svc.name] = user
            self.role_arns[svc.name] = role.arn
            self.master_secret_arns[svc.name] = secret_arn
            self.bootstrap_role_arns[svc.name] = bootstrap.arn
        self.register_outputs(
            {"endpoints": self.endpoints, "role_arns": self.role_arns, "bootstrap_role_arns": self.bootstrap_role_arns}
        )
