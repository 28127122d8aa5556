"""Graph-level invariants over the whole program (dev and prod), as the offline plan records it.

These are the properties no single component can promise alone: they hold for the composition.
"""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import json
from functools import cache
from pathlib import Path

import pytest
from shop_platform.tags import missing_required_tags

from services import catalog
from tools.offline import PlatformMocks, Recording
from tools.plan import PlanResult, main, render_counts, render_tree, run_plan, stack_config, write

RDS = "aws:rds/instance:Instance"
SG_IN = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def _cluster_sg(rec: Recording) -> str:
    return PlatformMocks.cluster_security_group_id(rec.one("aws:eks/cluster:Cluster").inputs["name"])


def test_every_rds_instance_is_in_isolated_subnets_and_reached_only_from_the_cluster(plan: PlanResult) -> None:
    """A database reachable from anything but the cluster (or routable to the internet) is the breach that
    matters most in a shop: customer and payment data live there."""
    rec = plan.recording
    ids = rec.by_id()
    isolated = {r.id for r in rec.of_type("aws:ec2/subnet:Subnet") if r.inputs["tags"]["tier"] == "isolated"}
    groups = {g.outputs["name"]: g for g in rec.of_type("aws:rds/subnetGroup:SubnetGroup")}
    instances = rec.of_type(RDS)
    assert instances
    for db in instances:
        assert db.inputs["publiclyAccessible"] is False
        assert set(groups[db.inputs["dbSubnetGroupName"]].inputs["subnetIds"]) <= isolated
        for sg_id in db.inputs["vpcSecurityGroupIds"]:
            assert ids[sg_id].inputs.get("ingress") in (None, [])  # no inline rules to hide behind
            rules = [r for r in rec.of_type(SG_IN) if r.inputs["securityGroupId"] == sg_id]
            assert rules
            for rule in rules:
                assert rule.inputs["referencedSecurityGroupId"] == _cluster_sg(rec)
                assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (5432, 5432)
                assert "cidrIpv4" not in rule.inputs


def test_nothing_is_publicly_reachable_except_the_alb_on_80_and_443(plan: PlanResult) -> None:
    """The ALB (behind WAF) is the only internet entry into the VPC; any other open port bypasses WAF, the TLS
    policy and access logs. (The maintenance CloudFront distribution is public too, by design: it serves
    nothing but a static 503 document from a private bucket.)"""
    rec = plan.recording
    albs = rec.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert len(albs) == 1
    alb_sgs = set(albs[0].inputs["securityGroups"])
    for rule in rec.of_type(SG_IN):
        cidr = rule.inputs.get("cidrIpv4") or rule.inputs.get("cidrIpv6")
        if cidr is not None and not ipaddress.ip_network(cidr).is_private:
            assert rule.inputs["securityGroupId"] in alb_sgs
            assert rule.inputs["fromPort"] == rule.inputs["toPort"]
            assert rule.inputs["fromPort"] in (80, 443)
    for sg in rec.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert sg.inputs.get("ingress") in (None, [])
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in rec.of_type("aws:ec2/subnet:Subnet"))
    assert not rec.of_type("aws:ec2/instance:Instance")
    cluster = rec.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert cluster["endpointPrivateAccess"] is True
    assert all(ipaddress.ip_network(c).prefixlen >= 8 for c in cluster.get("publicAccessCidrs") or [])
    blocks = rec.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert len(blocks) == len(rec.of_type("aws:s3/bucket:Bucket"))
    assert all(
        all(
            b.inputs[k] is True
            for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )
        for b in blocks
    )


def test_web_acl_is_associated_with_the_alb(plan: PlanResult) -> None:
    """A web ACL that is not associated protects nothing (FSBP ELB.16)."""
    rec = plan.recording
    assoc = rec.one("aws:wafv2/webAclAssociation:WebAclAssociation")
    assert assoc.inputs["resourceArn"] == rec.one("aws:lb/loadBalancer:LoadBalancer").outputs["arn"]
    assert assoc.inputs["webAclArn"] == rec.named("edge-web-acl").outputs["arn"]


def test_failover_records_carry_the_health_check(plan: PlanResult) -> None:
    """Route 53 only fails over when the PRIMARY record has a health check; without it clients would time
    out on a dead ALB instead of getting the maintenance answer."""
    rec = plan.recording
    check = rec.one("aws:route53/healthCheck:HealthCheck")
    alb = rec.one("aws:lb/loadBalancer:LoadBalancer")
    cdn = rec.one("aws:cloudfront/distribution:Distribution")
    api = [r for r in rec.of_type("aws:route53/record:Record") if r.inputs.get("failoverRoutingPolicies")]
    kinds = {r.inputs["failoverRoutingPolicies"][0]["type"]: r for r in api}
    assert set(kinds) == {"PRIMARY", "SECONDARY"}
    primary, secondary = kinds["PRIMARY"], kinds["SECONDARY"]
    assert primary.inputs["healthCheckId"] == check.id
    assert primary.inputs["aliases"][0]["name"] == alb.outputs["dnsName"]
    assert primary.inputs["aliases"][0]["evaluateTargetHealth"] is True
    assert secondary.inputs["aliases"][0]["name"] == cdn.outputs["domainName"]
    assert primary.inputs["name"] == secondary.inputs["name"]
    # The health check probes the ALB itself: probing api.<domain> would never fail back.
    assert check.inputs["fqdn"] == alb.outputs["dnsName"]
    assert check.inputs["type"] == "HTTPS"
    assert check.inputs["resourcePath"] == "/healthz"


@cache
def _taggable(type_token: str) -> bool:
    """Whether the pulumi-aws resource class behind a type token accepts ``tags`` (read from the SDK)."""
    module, cls = type_token.split(":")[1].split("/")[0], type_token.rsplit(":", 1)[1]
    klass = getattr(importlib.import_module(f"pulumi_aws.{module}"), cls)
    return "tags" in inspect.signature(klass._internal_init).parameters


def test_every_taggable_resource_carries_stack_service_and_owner(plan: PlanResult) -> None:
    """Untagged resources cannot be attributed (cost, ownership, incident routing); the mocks run no
    transforms or provider default tags, so this proves the tags are set explicitly."""
    untagged = [
        f"{r.type} {r.name}: missing {sorted(missing_required_tags(r.inputs.get('tags')))}"
        for r in plan.recording.resources
        if r.custom and r.type.startswith("aws:") and _taggable(r.type) and missing_required_tags(r.inputs.get("tags"))
    ]
    assert untagged == []
    checked = [r for r in plan.recording.resources if r.custom and r.type.startswith("aws:") and _taggable(r.type)]
    assert len(checked) > 80


def test_per_service_resources_come_from_the_catalog(plan: PlanResult) -> None:
    """Adding a service must be one catalog entry: databases, roles and repositories follow it, none extra."""
    rec = plan.recording
    stack = plan.stack
    assert {r.inputs["identifier"] for r in rec.of_type(RDS)} == {
        f"{stack}-{s.name}" for s in catalog.database_services()
    }
    # Images come from the shared registry (the registry stack), never from a repository of the app stack.
    assert rec.of_type("aws:ecr/repository:Repository") == []
    registry = "777788889999.dkr.ecr.eu-west-1.amazonaws.com"
    assert rec.outputs["repositoryUrls"] == {s.name: f"{registry}/shop/{s.name}" for s in catalog.SERVICES}
    assert {r.inputs["tags"]["service"] for r in rec.of_type(RDS)} == {s.name for s in catalog.database_services()}


def test_each_service_role_connects_only_as_its_own_database_user(plan: PlanResult) -> None:
    """The orders pod may open connections to the orders database as orders_app, and do nothing else with
    IAM: no secret to read, no other database, no other user."""
    rec = plan.recording
    for db in rec.of_type(RDS):
        svc = db.inputs["tags"]["service"]
        doc = json.loads(rec.named(f"databases-{svc}-role-policy").inputs["policy"])
        assert [(st["Action"], st["Resource"]) for st in doc["Statement"]] == [
            ("rds-db:connect", f"arn:aws:rds-db:eu-west-1:111122223333:dbuser:{db.outputs['resourceId']}/{svc}_app")
        ]
        trust = json.loads(rec.named(f"databases-{svc}-role").inputs["assumeRolePolicy"])
        sub = next(v for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items() if k.endswith(":sub"))
        assert sub == f"system:serviceaccount:shop:{svc}"


def test_every_cloud_resource_belongs_to_a_component(plan: PlanResult) -> None:
    """Component shape: children are parented (so they appear, move and delete with their component)
    and named after it."""
    rec = plan.recording
    urns = rec.by_urn()
    for r in rec.resources:
        if r.custom and not r.type.startswith("pulumi:providers:"):
            parent = urns.get(r.parent or "")
            assert parent is not None, f"{r.name} has no component parent"
            assert r.name.startswith(parent.name), f"{r.name} is not named after {parent.name}"
    # Besides our components, only the Kubernetes provider's own manifest groups (one resource per group of
    # objects, parented to a shop:k8s component) are non-custom.
    provider_components = {"kubernetes:yaml/v2:ConfigGroup", "kubernetes:yaml/v2:ConfigFile"}
    assert all(r.type.startswith("shop:") or r.type in provider_components for r in rec.resources if not r.custom)


def test_destroy_order_removes_kubernetes_objects_before_nodes_cluster_and_network(plan: PlanResult) -> None:
    """Pulumi deletes dependents first. Kubernetes objects (TargetGroupBinding, PVCs) use the cluster's
    provider, which depends on node groups and add-ons, so they go while controllers and the EBS CSI driver
    can still release targets and volumes; the cluster depends on the NAT routes, so the network goes last."""
    rec = plan.recording
    provider = rec.one("pulumi:providers:kubernetes")
    node_groups = rec.of_type("aws:eks/nodeGroup:NodeGroup")
    addons = rec.of_type("aws:eks/addon:Addon")
    assert {n.urn for n in node_groups} | {a.urn for a in addons} <= set(provider.deps)
    cluster = rec.one("aws:eks/cluster:Cluster")
    nat_routes = [r for r in rec.of_type("aws:ec2/route:Route") if "natGatewayId" in r.inputs]
    assert {r.urn for r in nat_routes} <= set(cluster.deps)
    ebs = next(a for a in addons if a.inputs["addonName"] == "aws-ebs-csi-driver")
    assert {n.urn for n in node_groups} <= set(ebs.deps)


def test_shield_protects_the_public_surface_only_in_prod(dev_plan: PlanResult, prod_plan: PlanResult) -> None:
    """Shield Advanced is a paid commitment: on in prod (ALB, zone, maintenance CDN, tied to the health check),
    off in dev."""
    assert not dev_plan.recording.of_type("aws:shield/protection:Protection")
    rec = prod_plan.recording
    protected = {p.inputs["resourceArn"] for p in rec.of_type("aws:shield/protection:Protection")}
    assert rec.one("aws:lb/loadBalancer:LoadBalancer").outputs["arn"] in protected
    assert rec.one("aws:cloudfront/distribution:Distribution").outputs["arn"] in protected
    assert rec.one("aws:route53/zone:Zone").outputs["arn"] in protected
    link = rec.one("aws:shield/protectionHealthCheckAssociation:ProtectionHealthCheckAssociation")
    assert link.inputs["healthCheckArn"] == rec.one("aws:route53/healthCheck:HealthCheck").outputs["arn"]


def test_stack_outputs_are_complete_and_the_kubeconfig_stays_secret(plan: PlanResult) -> None:
    """Operators and later layers read these outputs; a kubeconfig printed in clear would leak cluster access."""
    out = plan.recording.outputs
    assert out["apiUrl"].startswith("https://api.")
    assert out["clusterName"] == f"shop-{plan.stack}"
    assert out["kubeconfig"] == "[secret]"
    assert set(out["databaseEndpoints"]) == {s.name for s in catalog.database_services()}
    assert set(out["databaseUsers"]) == set(out["databaseRoleArns"]) == set(out["databaseEndpoints"])
    assert out["webAclArn"].startswith("arn:aws:wafv2:")
    assert out["healthCheckId"]


def test_plan_writes_resources_json_without_secrets(plan: PlanResult, tmp_path: Path) -> None:
    """resources.json is reviewed and archived by CI: it must be complete and must never hold a secret."""
    path = write(plan, tmp_path)
    data = json.loads(path.read_text())
    assert data["resource_count"] == len(plan.recording.resources)
    assert {"type", "name", "parent", "inputs"} <= data["resources"][0].keys()
    text = path.read_text()
    assert "certificate-authority-data" not in text  # the kubeconfig lives only in secret inputs/outputs
    assert all("password" not in r["inputs"] for r in data["resources"] if r["type"] == RDS)


def test_plan_prints_a_tree_and_counts(dev_plan: PlanResult) -> None:
    """The printed plan is what a reviewer reads: components with their children, then totals per type."""
    tree = render_tree(dev_plan.recording)
    assert tree.splitlines()[0].startswith(("cluster", "databases", "dns", "edge", "network", "registry", "zone"))
    assert "\n  cluster-eks  (aws:eks/cluster:Cluster)" in tree
    assert "total" in render_counts(dev_plan.recording)


def test_plan_exits_2_and_names_the_key_on_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    """CI must fail with the config key in the message, not a traceback."""
    assert main(["--stack", "nonexistent", "--quiet"]) == 2
    assert "retail-platform:stack" in capsys.readouterr().err


def test_bad_config_fails_before_any_resource_is_declared() -> None:
    """Validation is the program's first act: a bad value never leaves half a stack behind."""
    from shop_platform.config import ConfigError

    cfg = stack_config("prod")
    cfg["retail-platform:databases"] = json.dumps({**json.loads(cfg["retail-platform:databases"]), "multiAz": False})
    with pytest.raises(ConfigError, match=r"databases\.multiAz"):
        run_plan("prod", config=cfg)


def test_program_reports_a_misspelt_top_level_key() -> None:
    """The program itself (not only the plan's pre-check) reads every key of the project, not just the ones
    it knows, so a typo is reported instead of silently falling back to a default."""
    import runpy

    from shop_platform.config import ConfigError

    from tools.offline import run_program
    from tools.plan import REPO_ROOT

    cfg = {**stack_config("dev"), "retail-platform:shieldAdvanced": "true"}
    with pytest.raises(ConfigError, match="shieldAdvanced"):
        run_program(
            lambda: runpy.run_path(str(REPO_ROOT / "stacks"), run_name="__main__"),
            project="retail-platform",
            stack="dev",
            config=cfg,
            region="eu-west-1",
        )


def _resource_counts(rec: Recording) -> dict[str, int]:
    return {"custom": sum(1 for r in rec.resources if r.custom), "all": len(rec.resources)}


def test_prod_is_a_superset_of_dev_in_resilience(dev_plan: PlanResult, prod_plan: PlanResult) -> None:
    """Prod adds AZs, NATs and Shield; it never has fewer resources than dev."""
    dev, prod = _resource_counts(dev_plan.recording), _resource_counts(prod_plan.recording)
    assert prod["custom"] > dev["custom"]
    assert len(prod_plan.recording.of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert len(dev_plan.recording.of_type("aws:ec2/natGateway:NatGateway")) == 1


def test_everything_that_stores_data_is_encrypted_and_expires(plan: PlanResult) -> None:
    """Encryption at rest (FSBP KMS.4, S3, RDS.3, logs, SNS.1) and bounded retention hold for the whole
    stack, not just the resources a component test happened to look at."""
    rec = plan.recording
    assert all(
        k.inputs["enableKeyRotation"] is True and k.inputs["deletionWindowInDays"] == 30
        for k in rec.of_type("aws:kms/key:Key")
    )
    for group in rec.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert group.inputs["kmsKeyId"].startswith("arn:aws:kms:"), group.name
        assert group.inputs["retentionInDays"] > 0, group.name
    buckets = {b.outputs["bucket"] for b in rec.of_type("aws:s3/bucket:Bucket")}
    sse = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    assert {c.inputs["bucket"] for c in rec.of_type(sse)} == buckets
    assert {p.inputs["bucket"] for p in rec.of_type("aws:s3/bucketPolicy:BucketPolicy")} == buckets
    assert {v.inputs["bucket"] for v in rec.of_type("aws:s3/bucketVersioning:BucketVersioning")} == buckets
    assert all(db.inputs["storageEncrypted"] is True for db in rec.of_type(RDS))
    assert all(t.inputs.get("kmsMasterKeyId") for t in rec.of_type("aws:sns/topic:Topic"))
    assert all(
        r.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
        for r in rec.of_type("aws:ecr/repository:Repository")
    )


def test_adding_a_service_is_one_catalog_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The design's spine: a new catalog entry that owns data gets its repository, database, security group,
    key and secret-reading role with no platform edit."""
    from services.catalog import Service

    extra = Service(name="reviews", port=8099, owns_database=True, description="test-only extra service")
    monkeypatch.setattr(catalog, "SERVICES", (*catalog.SERVICES, extra))
    catalog.by_name.cache_clear()  # get() / callers_of() read a cached index of SERVICES
    try:
        rec = run_plan("dev").recording
        shared = run_plan("registry").recording
    finally:
        monkeypatch.undo()
        catalog.by_name.cache_clear()
    assert "dev-reviews" in {r.inputs["identifier"] for r in rec.of_type(RDS)}
    assert "shop/reviews" in {r.inputs["name"] for r in shared.of_type("aws:ecr/repository:Repository")}
    assert rec.outputs["imagePins"]["digests"].keys() >= {"reviews"}
    role = rec.named("databases-reviews-role")
    assert "system:serviceaccount:shop:reviews" in role.inputs["assumeRolePolicy"]
    assert rec.named("databases-reviews-database-from-cluster-5432").inputs["fromPort"] == 5432


def test_project_file_points_the_engine_at_this_program() -> None:
    """The config keys are namespaced by the project name; a renamed project would silently ignore every
    retail-platform:* value, and a wrong main/virtualenv would run another program or interpreter."""
    import yaml  # type: ignore[import-untyped]
    from shop_platform.config import PROJECT

    from tools.plan import REPO_ROOT

    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT
    assert project["main"].rstrip("/") == "stacks"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert (REPO_ROOT / project["main"] / "__main__.py").is_file()
