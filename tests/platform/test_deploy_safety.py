"""Graph invariants over the recorded plan of every AWS stack: what a first `pulumi up`, later `up`s and
`pulumi destroy` need from the AWS layer (versions, endpoint access, node groups, data safety)."""

from __future__ import annotations

import json
from pathlib import Path

from shop_platform import versions
from shop_platform.cluster import CLUSTER_VIEW_POLICY
from shop_platform.config import NODE_INSTANCE_SHAPES
from shop_platform.databases import BOOTSTRAP_NAMESPACE
from shop_platform.k8s.spec import SERVICES_NS
from shop_platform.network import endpoint_cidrs

from tools.offline import Recording
from tools.plan import PlanResult

RDS = "aws:rds/instance:Instance"


def test_cluster_and_databases_pin_supported_versions_with_an_explicit_policy(plan: PlanResult) -> None:
    rec = plan.recording
    cluster = rec.one("aws:eks/cluster:Cluster").inputs
    assert cluster["version"] in versions.EKS_SUPPORT
    assert cluster["upgradePolicy"] == {"supportType": versions.EKS_SUPPORT_TYPE}
    for db in rec.of_type("aws:rds/instance:Instance"):
        assert db.inputs["engineVersion"] == versions.POSTGRES_ENGINE_VERSION
        assert "." not in db.inputs["engineVersion"], "a minor pin plans a downgrade after an automatic upgrade"


def test_every_node_group_has_one_instance_shape(plan: PlanResult) -> None:
    """Cluster Autoscaler sizes a scale-up from one template node per group."""
    for group in plan.recording.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert len({NODE_INSTANCE_SHAPES[t] for t in group.inputs["instanceTypes"]}) == 1, group.name


def test_prod_api_endpoint_is_private_only(prod_plan: PlanResult) -> None:
    """FSBP EKS.1 fails whenever the public endpoint is on, whatever the CIDRs."""
    vpc = prod_plan.recording.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert not vpc.get("publicAccessCidrs")


def test_private_access_networks_reach_only_the_api_port(prod_plan: PlanResult) -> None:
    rec = prod_plan.recording
    rules = [
        r
        for r in rec.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if "api-from-private" in r.name
    ]
    assert rules, "prod names CI networks in cluster.privateAccessCidrs"
    for rule in rules:
        assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (443, 443)


def test_the_preview_role_can_read_but_not_change_the_cluster(plan: PlanResult) -> None:
    """A PR preview reads the cluster through the Kubernetes provider: it needs an access entry, and only
    the view policy."""
    rec = plan.recording
    associations = rec.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    viewers = [a for a in associations if a.inputs["policyArn"] == CLUSTER_VIEW_POLICY]
    assert viewers
    entries = {e.inputs["principalArn"] for e in rec.of_type("aws:eks/accessEntry:AccessEntry")}
    for v in viewers:
        assert v.inputs["principalArn"] in entries
        assert v.inputs["principalArn"].endswith(":role/shop-ci-preview")
        others = [a for a in associations if a.inputs["principalArn"] == v.inputs["principalArn"]]
        assert others == [v]


def test_subnets_use_standard_availability_zones_only(plan: PlanResult) -> None:
    """An account opted in to Local Zones gets them from state=available too; EKS and RDS refuse them."""
    for subnet in plan.recording.of_type("aws:ec2/subnet:Subnet"):
        assert "-lz-" not in subnet.inputs["availabilityZone"], subnet.name


def _master_secrets(rec: Recording) -> set[str]:
    return {db.outputs["masterUserSecrets"][0]["secretArn"] for db in rec.of_type(RDS)}


def test_no_workload_can_read_a_master_secret(plan: PlanResult) -> None:
    """The RDS master credential (rds_superuser) reaches one place per database: the role-bootstrap Job's
    service account. No IAM policy trusted by any other service account names a master secret, and no
    Kubernetes object but the bootstrap Jobs carries one."""
    rec = plan.recording
    masters = _master_secrets(rec)
    assert masters
    roles = {r.urn: r for r in rec.of_type("aws:iam/role:Role")}
    readers: set[str] = set()
    for policy in rec.of_type("aws:iam/rolePolicy:RolePolicy"):
        text = policy.inputs["policy"]
        if any(m in text for m in masters) or "secretsmanager:*" in text:
            role = next(r for r in roles.values() if r.id == policy.inputs["role"])
            trust = json.dumps(role.inputs["assumeRolePolicy"])
            assert f"system:serviceaccount:{BOOTSTRAP_NAMESPACE}:" in trust, policy.name
            readers.add(policy.name)
    assert len(readers) == len(masters)  # one bootstrap role per database, each reading its own
    for r in rec.resources:
        if r.type.startswith("kubernetes:") and r.type != "kubernetes:batch/v1:Job":
            assert not any(m in json.dumps(r.inputs) for m in masters), r.name
    for job in rec.of_type("kubernetes:batch/v1:Job"):
        assert job.inputs["metadata"]["namespace"] == BOOTSTRAP_NAMESPACE
    services_env = json.dumps([r.inputs for r in rec.of_type("kubernetes:helm.sh/v3:Release")])
    assert "DB_SECRET_ARN" not in services_env
    assert "DB_IAM_USER" in services_env


def test_services_start_after_their_database_role_exists(plan: PlanResult) -> None:
    """pulumi-kubernetes waits for a Job to complete; the services' releases depend on the bootstrap Jobs,
    so no service starts against a database where its role does not exist yet. The wait is bounded."""
    rec = plan.recording
    jobs = rec.of_type("kubernetes:batch/v1:Job")
    assert len(jobs) == len(rec.of_type(RDS))
    for job in jobs:
        assert 0 < job.inputs["spec"]["activeDeadlineSeconds"] <= 600
        pod = job.inputs["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["containers"][0]["command"] == ["python", "-m", "services.kit.dbroles"]
    job_urns = {j.urn for j in jobs}
    for component in rec.of_type("shop:k8s:ServiceDeployment"):
        releases = [r for r in rec.of_type("kubernetes:helm.sh/v3:Release") if r.parent == component.urn]
        for release in releases:
            assert job_urns <= set(release.deps) | set(component.deps), release.name


def test_prod_keeps_what_final_snapshots_need_and_dev_destroys_cleanly(
    dev_plan: PlanResult, prod_plan: PlanResult
) -> None:
    for plan, prod in ((dev_plan, False), (prod_plan, True)):
        rec = plan.recording
        for db in rec.of_type(RDS):
            svc = db.inputs["tags"]["service"]
            key = rec.named(f"databases-{svc}-key")
            assert key.retain_on_delete is prod, "a deleted key makes the final snapshot unrestorable"
            assert db.inputs["deleteAutomatedBackups"] is (not prod)
            assert db.inputs["skipFinalSnapshot"] is (not prod)
            if prod:
                assert db.inputs["finalSnapshotIdentifier"].startswith(f"{db.inputs['identifier']}-final-")
                assert db.inputs["finalSnapshotIdentifier"] != f"{db.inputs['identifier']}-final"


def test_rds_log_groups_are_precreated_with_retention_and_a_key(plan: PlanResult) -> None:
    rec = plan.recording
    groups = {g.inputs["name"]: g for g in rec.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for db in rec.of_type(RDS):
        for kind in db.inputs["enabledCloudwatchLogsExports"]:
            group = groups[f"/aws/rds/instance/{db.inputs['identifier']}/{kind}"]
            assert group.inputs["retentionInDays"] > 0
            assert group.inputs["kmsKeyId"]
            assert group.urn in db.deps


def test_maintenance_cloudfront_has_waf_logging_and_a_root_object(plan: PlanResult) -> None:
    """FSBP CloudFront.6/.5/.1: a CLOUDFRONT-scope web ACL (only us-east-1 has them), access logs, a default
    root object."""
    rec = plan.recording
    dist = rec.one("aws:cloudfront/distribution:Distribution")
    acl = next(a for a in rec.of_type("aws:wafv2/webAcl:WebAcl") if a.inputs["scope"] == "CLOUDFRONT")
    assert acl.inputs["region"] == "us-east-1"
    assert dist.inputs["webAclId"] == acl.outputs["arn"]
    assert dist.inputs["defaultRootObject"]
    source = rec.one("aws:cloudwatch/logDeliverySource:LogDeliverySource")
    assert source.inputs["logType"] == "ACCESS_LOGS"
    assert source.inputs["region"] == "us-east-1"
    assert dist.urn in source.deps
    assert rec.one("aws:cloudwatch/logDelivery:LogDelivery").inputs["region"] == "us-east-1"
    logging = rec.of_type("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    assert {a.outputs["arn"] for a in rec.of_type("aws:wafv2/webAcl:WebAcl")} <= {
        c.inputs["resourceArn"] for c in logging
    }


def test_only_this_distribution_may_read_the_maintenance_bucket(plan: PlanResult) -> None:
    """A condition on distribution/* lets any distribution in the account use the bucket as its origin."""
    rec = plan.recording
    dist = rec.one("aws:cloudfront/distribution:Distribution")
    grants = [
        st
        for p in rec.of_type("aws:s3/bucketPolicy:BucketPolicy")
        for st in json.loads(p.inputs["policy"])["Statement"]
        if st.get("Principal") == {"Service": "cloudfront.amazonaws.com"}
    ]
    assert len(grants) == 1
    assert grants[0]["Condition"] == {"StringEquals": {"AWS:SourceArn": dist.outputs["arn"]}}


def test_every_bucket_writes_server_access_logs_except_the_log_bucket(plan: PlanResult) -> None:
    """FSBP S3.9; the access-log bucket takes deliveries from the S3 logging service of this account only."""
    rec = plan.recording
    buckets = {b.id for b in rec.of_type("aws:s3/bucket:Bucket")}
    logging = rec.of_type("aws:s3/bucketLogging:BucketLogging")
    targets = {lg.inputs["targetBucket"] for lg in logging}
    assert len(targets) == 1
    assert {lg.inputs["bucket"] for lg in logging} == buckets - targets
    delivery = [
        st
        for p in rec.of_type("aws:s3/bucketPolicy:BucketPolicy")
        for st in json.loads(p.inputs["policy"])["Statement"]
        if st.get("Sid") == "S3ServerAccessLogs"
    ]
    assert len(delivery) == 1
    assert delivery[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": "111122223333"}


def test_dev_buckets_empty_on_destroy_and_prod_buckets_stay(dev_plan: PlanResult, prod_plan: PlanResult) -> None:
    """Versioned log buckets are never empty: without force_destroy a dev destroy stops at BucketNotEmpty.
    Prod's logs are audit evidence: destroy leaves the buckets (retain_on_delete) instead of failing."""
    for plan, prod in ((dev_plan, False), (prod_plan, True)):
        for bucket in plan.recording.of_type("aws:s3/bucket:Bucket"):
            assert bucket.inputs["forceDestroy"] is (not prod), bucket.name
            assert bucket.retain_on_delete is prod, bucket.name


def test_pulumi_writes_objects_only_after_versioning_is_on(plan: PlanResult) -> None:
    """An object put before versioning keeps a 'null' version its own delete leaves behind (blocks the
    bucket's deletion)."""
    rec = plan.recording
    versionings = {v.urn for v in rec.of_type("aws:s3/bucketVersioning:BucketVersioning")}
    for obj in rec.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        assert versionings & set(obj.deps), obj.name


def test_service_roles_are_bound_to_this_account(plan: PlanResult) -> None:
    """Confused deputy: services acting for a caller (flow logs, RDS monitoring) assume roles only for this
    account's resources; the alarm topic key likewise."""
    rec = plan.recording
    for role in rec.of_type("aws:iam/role:Role"):
        trust = json.loads(role.inputs["assumeRolePolicy"])
        for st in trust["Statement"]:
            if st["Principal"].get("Service") in ("vpc-flow-logs.amazonaws.com", "monitoring.rds.amazonaws.com"):
                assert st["Condition"]["StringEquals"] == {"aws:SourceAccount": "111122223333"}, role.name
    for key in rec.of_type("aws:kms/key:Key"):
        for st in json.loads(key.inputs["policy"])["Statement"]:
            if st["Principal"] == {"Service": "cloudwatch.amazonaws.com"}:
                assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": "111122223333"}}


def test_aws_apis_are_reached_through_vpc_endpoints(plan: PlanResult) -> None:
    """S3 (gateway) and the interface endpoints the workloads call, with private DNS in the node subnets."""
    rec = plan.recording
    endpoints = {
        e.inputs["serviceName"].removeprefix("com.amazonaws.eu-west-1."): e
        for e in rec.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert set(endpoints) == {"s3", "ecr.api", "ecr.dkr", "secretsmanager", "sts", "logs"}
    assert endpoints["s3"].inputs["vpcEndpointType"] == "Gateway"
    private = {s.id for s in rec.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "private"}
    for name, e in endpoints.items():
        if name != "s3":
            assert e.inputs["privateDnsEnabled"] is True
            assert set(e.inputs["subnetIds"]) == private


def test_database_pods_https_egress_stays_inside_the_vpc(plan: PlanResult, tmp_path: Path) -> None:
    """The rendered NetworkPolicies: a pod that owns a database may open HTTPS only to the interface
    endpoints' subnets, not to the internet (an exfiltration path for customer data)."""
    import yaml  # type: ignore[import-untyped]

    from tools.plan import write

    vpc = plan.recording.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"]
    allowed = set(endpoint_cidrs(vpc))
    write(plan, tmp_path)
    policies = [
        d
        for f in (tmp_path / "manifests").rglob("*.yaml")
        for d in yaml.safe_load_all(f.read_text())
        if d
        and d.get("kind") == "NetworkPolicy"
        and d["metadata"].get("namespace") in (SERVICES_NS, BOOTSTRAP_NAMESPACE)
    ]
    https = [
        peer
        for pol in policies
        for rule in pol["spec"].get("egress", [])
        if any(p.get("port") == 443 for p in rule.get("ports", []))
        for peer in rule.get("to", [])
    ]
    assert https
    for peer in https:
        if "ipBlock" in peer:
            assert peer["ipBlock"]["cidr"] in allowed, peer
            assert "except" not in peer["ipBlock"]


def test_the_cluster_role_may_use_its_secrets_key(plan: PlanResult) -> None:
    """Envelope encryption must not hang on the creator's grant alone (terraform-aws-eks attaches the same)."""
    rec = plan.recording
    cluster = rec.one("aws:eks/cluster:Cluster")
    key_arn = cluster.inputs["encryptionConfig"]["provider"]["keyArn"]
    policy = json.loads(rec.named("cluster-control-plane-encryption").inputs["policy"])
    assert policy["Statement"][0]["Resource"] == key_arn
    assert rec.named("cluster-control-plane-encryption").urn in cluster.deps
