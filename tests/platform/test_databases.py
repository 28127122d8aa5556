"""Databases component: one secure PostgreSQL per catalog service, and what config changes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from shop_platform import versions
from shop_platform.config import ConfigError, DatabasesConfig
from shop_platform.context import StackContext
from shop_platform.databases import Databases, DatabasesArgs

from services import catalog
from tests.platform.conftest import section
from tools.offline import Recording

RDS = "aws:rds/instance:Instance"


def _args(ctx: StackContext, config: dict[str, object] | None = None, **over: object) -> DatabasesArgs:
    """The component's args; ``config`` overrides keys of the ``databases`` section (the environment's defaults)."""
    base: dict[str, object] = dict(
        ctx=ctx,
        services=catalog.database_services(),
        vpc_id="vpc-1",
        isolated_subnet_ids=["iso-a", "iso-b"],
        cluster_security_group_id="sg-cluster",
        oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/x",
        oidc_issuer="https://oidc.example/id/X",
        config=section(DatabasesConfig, ctx, **(config or {})),
    )
    base.update(over)
    return DatabasesArgs(**base)  # type: ignore[arg-type]


def _run(run: Callable[..., Recording], ctx: StackContext, config: dict[str, object] | None = None) -> Recording:
    return run(lambda: Databases("databases", _args(ctx, config)), stack="prod" if ctx.prod else "dev")


def test_one_instance_per_service_that_owns_data(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """Database-per-service: a shared instance would couple services' schemas, load and blast radius."""
    rec = _run(run, dev_ctx)
    assert sorted(r.inputs["dbName"] for r in rec.of_type(RDS)) == sorted(
        s.database_name for s in catalog.database_services()
    )


def test_secure_defaults_on_every_instance(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """Encryption with the database's own key, RDS-managed password (never in state), private, backed up,
    observable: FSBP RDS.2/3/6/9/10/11/13/17/25."""
    rec = _run(run, dev_ctx)
    for db in rec.of_type(RDS):
        i = db.inputs
        assert i["storageEncrypted"] is True
        assert i["kmsKeyId"] == i["masterUserSecretKmsKeyId"] == i["performanceInsightsKmsKeyId"]
        assert i["manageMasterUserPassword"] is True
        assert "password" not in i
        assert i["publiclyAccessible"] is False
        assert i["backupRetentionPeriod"] >= 7
        assert i["performanceInsightsEnabled"] is True
        assert i["copyTagsToSnapshot"] is True
        assert i["iamDatabaseAuthenticationEnabled"] is True
        assert i["autoMinorVersionUpgrade"] is True
        assert i["monitoringInterval"] == 60
        assert "postgresql" in i["enabledCloudwatchLogsExports"]
        assert i["username"] != "postgres"
        assert i["engineVersion"] == versions.POSTGRES_ENGINE_VERSION
    keys = [db.inputs["kmsKeyId"] for db in rec.of_type(RDS)]
    assert len(set(keys)) == len(keys)  # one key per database


def test_parameter_group_forces_tls(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """FSBP RDS.38: without rds.force_ssl a misconfigured client sends credentials and data in clear."""
    rec = _run(run, dev_ctx)
    group = rec.one("aws:rds/parameterGroup:ParameterGroup")
    params = {p["name"]: p["value"] for p in group.inputs["parameters"]}
    assert params["rds.force_ssl"] == "1"
    assert group.inputs["family"] == versions.POSTGRES_PARAMETER_FAMILY
    assert all(db.inputs["parameterGroupName"] == group.outputs["name"] for db in rec.of_type(RDS))


def test_prod_is_multi_az_protected_and_keeps_a_final_snapshot(
    run: Callable[..., Recording], prod_ctx: StackContext
) -> None:
    """FSBP RDS.5/RDS.8: an AZ loss or a mistaken destroy must not lose orders or payments."""
    for db in _run(run, prod_ctx).of_type(RDS):
        assert db.inputs["multiAz"] is True
        assert db.inputs["deletionProtection"] is True
        assert db.inputs["skipFinalSnapshot"] is False
        # Unique per instance lifetime: a fixed name fails the next create/destroy cycle.
        assert db.inputs["finalSnapshotIdentifier"].startswith(f"{db.inputs['identifier']}-final-")


def test_dev_trades_resilience_for_cost(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """Config changes these: dev runs single-AZ and can be destroyed without snapshots."""
    for db in _run(run, dev_ctx, config={"instanceClass": "db.t4g.large"}).of_type(RDS):
        assert db.inputs["multiAz"] is False
        assert db.inputs["skipFinalSnapshot"] is True
        assert db.inputs["instanceClass"] == "db.t4g.large"


def test_only_the_cluster_security_group_reaches_5432(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """No CIDR rule, no other group: pods in the cluster are the only clients."""
    rec = _run(run, dev_ctx)
    rules = rec.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert len(rules) == len(catalog.database_services())
    for rule in rules:
        assert rule.inputs["referencedSecurityGroupId"] == "sg-cluster"
        assert rule.inputs["fromPort"] == rule.inputs["toPort"] == 5432
    assert rec.one("aws:rds/subnetGroup:SubnetGroup").inputs["subnetIds"] == ["iso-a", "iso-b"]


def test_each_role_reads_only_its_own_secret(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """One compromised service must not yield any database credential: the service's role may only connect
    as its own user; the master secret is readable by that database's bootstrap role alone."""
    rec = _run(run, dev_ctx)
    for db in rec.of_type(RDS):
        svc = db.inputs["tags"]["service"]
        doc = json.loads(rec.named(f"databases-{svc}-role-policy").inputs["policy"])
        assert [st["Action"] for st in doc["Statement"]] == ["rds-db:connect"]
        assert doc["Statement"][0]["Resource"].endswith(f"dbuser:{db.outputs['resourceId']}/{svc}_app")
        master = json.loads(rec.named(f"databases-{svc}-bootstrap-role-policy").inputs["policy"])
        assert master["Statement"][0]["Resource"] == db.outputs["masterUserSecrets"][0]["secretArn"]
        assert master["Statement"][1]["Resource"] == db.inputs["kmsKeyId"]


def test_args_refuse_unsafe_combinations(prod_ctx: StackContext, dev_ctx: StackContext) -> None:
    """Secure defaults live in the section the args take (prod without multi-AZ, short backups) and in the args
    (one-AZ subnet groups, services without a database)."""
    with pytest.raises(ConfigError, match="multi-AZ"):
        _args(prod_ctx, config={"multiAz": False})
    with pytest.raises(ConfigError, match=r"backupRetentionDays: 1 is out of range; allowed: an integer 7\.\.35"):
        _args(dev_ctx, config={"backupRetentionDays": 1})
    with pytest.raises(ValueError, match="2 AZs"):
        _args(dev_ctx, isolated_subnet_ids=["iso-a"])
    with pytest.raises(ValueError, match="own a database"):
        _args(dev_ctx, services=(catalog.get(catalog.GATEWAY),))
