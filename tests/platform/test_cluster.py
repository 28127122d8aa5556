"""Cluster component: secure defaults and what its config changes (run under mocks)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from shop_platform import versions
from shop_platform.cluster import Cluster, ClusterArgs
from shop_platform.config import ClusterConfig, ConfigError
from shop_platform.context import StackContext

from tests.platform.conftest import section
from tools.offline import Recording

ADMIN = "arn:aws:iam::111122223333:role/admin"


def _args(ctx: StackContext, **config: object) -> ClusterArgs:
    """The component's args with its ``cluster`` section: ``config`` overrides keys of a stack file (prod needs
    three nodes)."""
    base: dict[str, object] = {
        "adminRoleArns": [ADMIN],
        "nodeGroups": [
            {"name": "general", "instanceTypes": ["m7g.large"], "minSize": 3 if ctx.prod else 2, "maxSize": 5}
        ],
    }
    return ClusterArgs(
        ctx=ctx,
        cluster_name="shop-test",
        config=section(ClusterConfig, ctx, **{**base, **config}),
        vpc_id="vpc-1",
        private_subnet_ids=["subnet-a", "subnet-b"],
    )


def _run(run: Callable[..., Recording], ctx: StackContext, **over: object) -> Recording:
    return run(lambda: Cluster("cluster", _args(ctx, **over)))


def test_secrets_are_envelope_encrypted_with_a_rotating_customer_key(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """FSBP EKS.3: Kubernetes secrets (service tokens, DB credentials synced in) must not rest in plain etcd."""
    rec = _run(run, dev_ctx)
    enc = rec.one("aws:eks/cluster:Cluster").inputs["encryptionConfig"]
    assert enc["resources"] == ["secrets"]
    key = next(k for k in rec.of_type("aws:kms/key:Key") if k.outputs["arn"] == enc["provider"]["keyArn"])
    assert key.inputs["enableKeyRotation"] is True


def test_public_endpoint_is_closed_without_cidrs_and_limited_with_them(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """FSBP EKS.1: the API server is reachable from the internet only from configured operator/CI ranges."""
    closed = _run(run, dev_ctx).one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert closed["endpointPublicAccess"] is False
    assert closed["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in closed
    limited = (
        _run(run, dev_ctx, publicAccessCidrs=["203.0.113.0/24"]).one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    )
    assert limited["endpointPublicAccess"] is True
    assert limited["publicAccessCidrs"] == ["203.0.113.0/24"]


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/7"])
def test_the_component_applies_the_configs_public_endpoint_rule(dev_ctx: StackContext, cidr: str) -> None:
    """One rule for the public endpoint, where the config states it (prefix >= 8): the component takes the
    validated section, so it cannot accept a range the stack config refuses (e.g. 0.0.0.0/1, half the internet)."""
    with pytest.raises(ConfigError, match="opens the API endpoint to"):
        _args(dev_ctx, publicAccessCidrs=[cidr])


def test_unsupported_version_and_no_admin_are_refused(dev_ctx: StackContext) -> None:
    """The args hold a validated section: an unsupported version or no admin never reaches the component."""
    with pytest.raises(ConfigError, match="version"):
        _args(dev_ctx, version="1.20")
    with pytest.raises(ConfigError, match="adminRoleArns"):
        _args(dev_ctx, adminRoleArns=[])


def test_all_control_plane_logs_go_to_an_encrypted_group_with_retention(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """FSBP EKS.8 (audit logs); without a pre-created group EKS makes one that never expires, unencrypted."""
    rec = _run(run, dev_ctx, logRetentionDays=30)
    assert set(rec.one("aws:eks/cluster:Cluster").inputs["enabledClusterLogTypes"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    group = rec.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"] == "/aws/eks/shop-test/cluster"
    assert group.inputs["retentionInDays"] == 30
    assert group.inputs["kmsKeyId"].startswith("arn:aws:kms:")
    assert group.urn in rec.one("aws:eks/cluster:Cluster").deps


def test_access_is_by_access_entries_only(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """The aws-auth ConfigMap is deprecated and easy to break; the creator gets no hidden admin."""
    rec = _run(run, dev_ctx, adminRoleArns=[ADMIN, "arn:aws:iam::111122223333:role/ci"])
    access = rec.one("aws:eks/cluster:Cluster").inputs["accessConfig"]
    assert access == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    assert len(rec.of_type("aws:eks/accessEntry:AccessEntry")) == 2
    policies = rec.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert {p.inputs["principalArn"] for p in policies} == {ADMIN, "arn:aws:iam::111122223333:role/ci"}
    assert all(p.inputs["accessScope"] == {"type": "cluster"} for p in policies)


def test_nodes_are_private_require_imdsv2_and_encrypt_their_disks(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """IMDSv1 (or hop limit 2) lets any pod steal the node role's credentials; nodes never get public subnets."""
    rec = _run(run, dev_ctx)
    group = rec.one("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["subnetIds"] == ["subnet-a", "subnet-b"]
    assert group.inputs["scalingConfig"] == {"minSize": 2, "maxSize": 5, "desiredSize": 2}
    lt = rec.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert group.inputs["launchTemplate"]["id"] == lt.id
    meta = lt.inputs["metadataOptions"]
    assert meta["httpTokens"] == "required"
    assert meta["httpPutResponseHopLimit"] == 1
    assert lt.inputs["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    assert {t["resourceType"] for t in lt.inputs["tagSpecifications"]} >= {"instance", "volume"}


def test_one_node_group_per_configured_group(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """Config changes the node groups: each spec becomes its own group and launch template."""
    rec = _run(
        run,
        dev_ctx,
        nodeGroups=[
            {"name": "general", "instanceTypes": ["m7g.large"]},
            {"name": "memory", "instanceTypes": ["r7g.large"], "minSize": 1, "maxSize": 3},
        ],
    )
    assert {g.inputs["nodeGroupName"] for g in rec.of_type("aws:eks/nodeGroup:NodeGroup")} == {"general", "memory"}
    assert len(rec.of_type("aws:ec2/launchTemplate:LaunchTemplate")) == 2


def test_addons_are_pinned_and_cni_and_ebs_run_on_their_own_roles(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """Unpinned add-ons upgrade node daemons behind our back; the CNI policy on the node role would hand
    ENI management to every pod on the node."""
    rec = _run(run, dev_ctx)
    addons = {a.inputs["addonName"]: a for a in rec.of_type("aws:eks/addon:Addon")}
    assert {n: a.inputs["addonVersion"] for n, a in addons.items()} == versions.EKS_ADDON_VERSIONS[
        versions.DEFAULT_EKS_VERSION
    ]
    roles = {r.outputs["arn"]: r for r in rec.of_type("aws:iam/role:Role")}
    for name, sa in (("vpc-cni", "aws-node"), ("aws-ebs-csi-driver", "ebs-csi-controller-sa")):
        trust = json.loads(roles[addons[name].inputs["serviceAccountRoleArn"]].inputs["assumeRolePolicy"])
        subs = [v for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items() if k.endswith(":sub")]
        assert subs == [f"system:serviceaccount:kube-system:{sa}"]
    node_policies = {
        p.inputs["policyArn"].rsplit("/", 1)[1]
        for p in rec.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if p.name.startswith("cluster-node-")
    }
    assert "AmazonEKS_CNI_Policy" not in node_policies


def test_autoscaler_role_is_bound_to_its_service_account_and_this_cluster(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """Node autoscaling acts on the node groups' min/max; its role must not reach other clusters' groups."""
    rec = _run(run, dev_ctx)
    policy = json.loads(rec.named("cluster-cluster-autoscaler-role-policy").inputs["policy"])
    scale = next(s for s in policy["Statement"] if s["Sid"] == "ScaleOwnNodeGroups")
    assert "k8s.io/cluster-autoscaler/shop-test" in next(iter(scale["Condition"]["StringEquals"]))
    oidc = rec.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_prod_cluster_is_deletion_protected(
    run: Callable[..., Recording], dev_ctx: StackContext, prod_ctx: StackContext
) -> None:
    """Deleting the prod control plane by a mistaken destroy takes every workload down."""
    assert _run(run, dev_ctx).one("aws:eks/cluster:Cluster").inputs["deletionProtection"] is False
    assert _run(run, prod_ctx).one("aws:eks/cluster:Cluster").inputs["deletionProtection"] is True


def test_kubeconfig_uses_short_lived_tokens_and_is_secret(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """A static token in a kubeconfig output would be a long-lived cluster credential in state."""
    from shop_platform.cluster import build_kubeconfig

    cfg = build_kubeconfig("c", "https://x", "Q0E=", "eu-west-1")
    assert cfg["users"][0]["user"]["exec"]["args"][:2] == ["eks", "get-token"]
    assert "token" not in json.dumps(cfg["users"]).replace("get-token", "")
    rec = _run(run, dev_ctx)
    assert rec.one("pulumi:providers:kubernetes").inputs["kubeconfig"] == "[secret]"


@pytest.mark.parametrize("eks_version", versions.SUPPORTED_EKS_VERSIONS)
def test_every_supported_eks_version_pins_every_addon_and_a_matching_kube_proxy(eks_version: str) -> None:
    """kube-proxy must match the control plane's minor; a version config allows without a pinned add-on set
    would fail at apply time (or install a mismatched kube-proxy)."""
    from shop_platform.cluster import POST_NODE_ADDONS, PRE_NODE_ADDONS

    pins = versions.EKS_ADDON_VERSIONS[eks_version]
    assert set(pins) == set(PRE_NODE_ADDONS) | set(POST_NODE_ADDONS)
    assert pins["kube-proxy"].startswith(f"v{eks_version}.")
    assert versions.DEFAULT_EKS_VERSION in versions.SUPPORTED_EKS_VERSIONS


def test_changing_the_cluster_version_changes_the_addon_pins(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """Config drives the upgrade: a new cluster.version brings its own add-on set with it."""
    rec = _run(run, dev_ctx, version="1.34")
    assert rec.one("aws:eks/cluster:Cluster").inputs["version"] == "1.34"
    proxy = next(a for a in rec.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "kube-proxy")
    assert proxy.inputs["addonVersion"] == versions.EKS_ADDON_VERSIONS["1.34"]["kube-proxy"]


def test_pulumi_leaves_the_autoscalers_desired_size_alone(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """The autoscaler moves desiredSize within min/max; if Pulumi reset it on every `up`, each deploy would
    undo scaling (and could drain busy nodes)."""
    group = _run(run, dev_ctx).one("aws:eks/nodeGroup:NodeGroup")
    assert "scalingConfig.desiredSize" in group.ignore_changes


def test_the_vpc_cni_enforces_network_policies(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """EKS accepts NetworkPolicy objects whether or not anything enforces them: without the CNI's
    enableNetworkPolicy the catalog's default-deny policies would exist on paper only."""
    rec = _run(run, dev_ctx)
    cni = next(a for a in rec.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "vpc-cni")
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
