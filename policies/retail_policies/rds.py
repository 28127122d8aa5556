"""RDS rules: encrypted, private, backed up, resilient in prod, TLS forced, no password in state.

AWSGuard (database.ts) and AWS FSBP controls in brackets. Instances are ``aws:rds/instance:Instance``;
Aurora clusters (``aws:rds/cluster:Cluster``) get the same checks where the property exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from pulumi_policy import PolicyResource

from retail_policies._support import (
    Context,
    Rule,
    Unknown,
    get,
    items,
    known,
    label,
    links,
    number,
    of_type,
    resource_policy,
    stack_policy,
    truthy,
)

INSTANCE: Final = "aws:rds/instance:Instance"
CLUSTER: Final = "aws:rds/cluster:Cluster"
PARAMETER_GROUP: Final = "aws:rds/parameterGroup:ParameterGroup"
CLUSTER_PARAMETER_GROUP: Final = "aws:rds/clusterParameterGroup:ClusterParameterGroup"
MIN_BACKUP_DAYS: Final = 7
DOCS: Final = "https://docs.aws.amazon.com/securityhub/latest/userguide/rds-controls.html"


def check_encrypted(props: Any, ctx: Context) -> Iterable[str]:
    if not truthy(get(props, "storageEncrypted")):
        state = "is off" if "storageEncrypted" in props else "is not set (RDS then stores data unencrypted)"
        yield (
            f"storageEncrypted {state}; set storage_encrypted=True with a customer-managed kms_key_id. "
            "Encryption cannot be switched on in place: snapshot, copy encrypted, restore"
        )


def check_private(props: Any, ctx: Context) -> Iterable[str]:
    # Missing means false (the provider's default), so only an explicit true is a finding.
    if truthy(get(props, "publiclyAccessible")):
        yield (
            "publiclyAccessible is true: the database gets a public DNS answer and can be reached from the "
            "internet if a security group allows it; set publicly_accessible=False and use isolated subnets"
        )


def check_backups(props: Any, ctx: Context) -> Iterable[str]:
    days = number(get(props, "backupRetentionPeriod"))
    if days is None:
        yield (
            f"backupRetentionPeriod is not set (RDS defaults to 1 day, 0 disables backups); set "
            f"backup_retention_period >= {MIN_BACKUP_DAYS}"
        )
    elif days < MIN_BACKUP_DAYS:
        yield (
            f"backupRetentionPeriod is {days:g} days; point-in-time recovery needs "
            f"backup_retention_period >= {MIN_BACKUP_DAYS}"
        )


def check_prod_multi_az(props: Any, ctx: Context) -> Iterable[str]:
    if ctx.prod and not truthy(get(props, "multiAz")):
        state = "false" if "multiAz" in props else "not set (single-AZ)"
        yield (
            f"multiAz is {state} in stack '{ctx.stack}' ({ctx.environment}); a prod database must survive "
            "the loss of one AZ: set databases.multiAz: true in Pulumi.<stack>.yaml (multi_az=True)"
        )


def check_prod_deletion_protection(props: Any, ctx: Context) -> Iterable[str]:
    if ctx.prod:
        if not truthy(get(props, "deletionProtection")):
            yield (
                f"deletionProtection is off in stack '{ctx.stack}' ({ctx.environment}); a stray destroy "
                "or replace would delete production data: set deletion_protection=True"
            )
        if truthy(get(props, "skipFinalSnapshot")):
            yield (
                "skipFinalSnapshot is true in prod: deleting the instance would keep no final snapshot; "
                "set skip_final_snapshot=False and a final_snapshot_identifier"
            )


def check_managed_password(props: Any, ctx: Context) -> Iterable[str]:
    passed = [k for k in ("password", "masterPassword") if k in props and get(props, k) is not None]
    if passed:
        yield (
            f"a master password is passed in ({passed[0]}=...): it ends up in Pulumi state; remove it and set "
            "manage_master_user_password=True so RDS keeps and rotates it in Secrets Manager"
        )
    elif not truthy(get(props, "manageMasterUserPassword")):
        yield (
            "manageMasterUserPassword is not true; set manage_master_user_password=True (RDS creates and "
            "rotates the secret in Secrets Manager, nothing secret enters state)"
        )


def check_parameter_group_forces_ssl(props: Any, ctx: Context) -> Iterable[str]:
    family = get(props, "family", default="")
    if not isinstance(family, str) or "postgres" not in family:
        return
    params = {get(p, "name"): get(p, "value") for p in items(get(props, "parameters"))}
    value = params.get("rds.force_ssl")
    if value is None:
        yield (
            f"parameter group of family {family} does not set rds.force_ssl; add "
            "{'name': 'rds.force_ssl', 'value': '1'} so plaintext connections are refused"
        )
    elif str(value).strip() != "1":
        yield f"rds.force_ssl is {value!r}; set it to '1' so plaintext connections are refused"


def _forces_ssl(group: PolicyResource) -> bool | None:
    params = known(group.props, "parameters")
    if params is None or isinstance(params, Unknown):
        return None
    for p in items(params):
        if known(p, "name") == "rds.force_ssl":
            return str(known(p, "value")).strip() == "1"
    return False


def check_instances_use_ssl_groups(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    groups = of_type(resources, PARAMETER_GROUP)
    for db in of_type(resources, INSTANCE):
        engine = known(db.props, "engine")
        if not (isinstance(engine, str) and "postgres" in engine):
            continue
        linked = links(db, "parameterGroupName", groups)
        name = known(db.props, "parameterGroupName")
        if not linked:
            what = (
                "uses the engine's default parameter group"
                if name is None
                else f"uses parameter group {name!r}, which this stack does not declare"
            )
            yield (
                f"{label(db)} {what}: TLS cannot be proven. Give it a parameter group declared in the "
                "program with rds.force_ssl = 1",
                db.urn,
            )
            continue
        for group in linked:
            if _forces_ssl(group) is False:
                yield (
                    f"{label(db)} uses {label(group)}, which does not set rds.force_ssl = 1: clients may "
                    "connect in plaintext. Add the parameter to the group",
                    db.urn,
                )


TYPES: Final = (INSTANCE, CLUSTER)

POLICIES: Final[list[Rule]] = [
    resource_policy(
        "rds-storage-encrypted",
        "RDS storage is encrypted at rest [RDS.3]",
        TYPES,
        check_encrypted,
        remediation="storage_encrypted=True, kms_key_id=<customer-managed key>",
        url=DOCS,
    ),
    resource_policy(
        "rds-not-publicly-accessible",
        "RDS is never publicly accessible [RDS.2]",
        (INSTANCE,),
        check_private,
        remediation="publicly_accessible=False; isolated subnets",
        url=DOCS,
    ),
    resource_policy(
        "rds-backup-retention",
        f"RDS keeps automated backups >= {MIN_BACKUP_DAYS} days [RDS.11]",
        TYPES,
        check_backups,
        remediation="backup_retention_period >= 7",
        url=DOCS,
    ),
    resource_policy(
        "rds-prod-multi-az",
        "Prod RDS instances are multi-AZ [RDS.5]",
        (INSTANCE,),
        check_prod_multi_az,
        remediation="databases.multiAz: true in the prod stack file",
        url=DOCS,
    ),
    resource_policy(
        "rds-prod-deletion-protection",
        "Prod RDS has deletion protection and keeps a final snapshot [RDS.8]",
        TYPES,
        check_prod_deletion_protection,
        remediation="deletion_protection=True, skip_final_snapshot=False in prod",
        url=DOCS,
    ),
    resource_policy(
        "rds-managed-master-password",
        "The RDS master password is managed by RDS in Secrets Manager, never in state",
        TYPES,
        check_managed_password,
        remediation="manage_master_user_password=True; no password=",
        url=DOCS,
    ),
    resource_policy(
        "rds-parameter-group-force-ssl",
        "PostgreSQL parameter groups force TLS [RDS.38]",
        (PARAMETER_GROUP, CLUSTER_PARAMETER_GROUP),
        check_parameter_group_forces_ssl,
        remediation="parameters: rds.force_ssl = 1",
        url=DOCS,
    ),
    stack_policy(
        "rds-instance-uses-ssl-parameter-group",
        "Every PostgreSQL instance uses a declared parameter group that forces TLS [RDS.38]",
        check_instances_use_ssl_groups,
        remediation="parameter_group_name=<a ParameterGroup in this program with rds.force_ssl=1>",
        url=DOCS,
    ),
]
