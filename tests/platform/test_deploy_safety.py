"""Graph invariants over the recorded plan of every AWS stack: what a first `pulumi up`, later `up`s and
`pulumi destroy` need from the AWS layer (versions, endpoint access, node groups, data safety)."""

from __future__ import annotations

from shop_platform import versions
from shop_platform.cluster import CLUSTER_VIEW_POLICY
from shop_platform.config import NODE_INSTANCE_SHAPES
from shop_platform.plan import PlanResult


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
    rules = [r for r in rec.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
             if "api-from-private" in r.name]
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
