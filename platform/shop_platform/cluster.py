"""Cluster: EKS with encrypted secrets, a private API endpoint, access entries and managed node groups.

Practices encoded:
- Kubernetes secrets envelope-encrypted with a customer-managed KMS key (FSBP EKS.3).
- Private endpoint always on. The public endpoint is off unless ``public_access_cidrs`` names the
  operators'/CI egress ranges (never 0.0.0.0/0); only then does FSBP EKS.1 pass, because its Config rule
  fails any public endpoint whatever the CIDRs. The stack config refuses public CIDRs in prod; dev may list
  them (an accepted EKS.1 finding). Networks routed to the VPC (self-hosted CI runners, VPN) reach the
  private endpoint through ``private_access_cidrs``: one 443 rule each on the cluster security group.
  All five control-plane log types on (EKS.8),
  into a pre-created, encrypted log group with a retention (EKS would otherwise create one that never expires).
- Access entries (authentication mode API), not the aws-auth ConfigMap; the creator gets no implicit admin.
  Read-only principals (the pull-request preview role) get AmazonEKSViewPolicy, so a preview can read the
  cluster without being able to change it.
- Managed node groups in private subnets, launch template with IMDSv2 required and hop limit 1 (pods cannot
  borrow the node role; they use IRSA), encrypted gp3 root volumes, tags propagated to instances/volumes.
- Cluster Autoscaler IAM role scoped to this cluster's node groups (it acts on each group's min/max).
- OIDC provider for IRSA; vpc-cni and EBS CSI run on their own IRSA roles, not the node role.
- Core add-ons pinned in ``versions.py``.
- ``k8s_provider`` depends on node groups and add-ons, so every Kubernetes object created through it is
  deleted on ``pulumi destroy`` while the controllers that clean up their AWS side still run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from shop_platform import iam, versions
from shop_platform.config import ClusterConfig
from shop_platform.context import StackContext
from shop_platform.irsa import service_account_role
from shop_platform.storage import encryption_key

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
CLUSTER_VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
API_PORT = 443
# Add-ons that must exist before nodes can become Ready, and those that need nodes to schedule on.
PRE_NODE_ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# The VPC CNI enforces Kubernetes NetworkPolicies only when asked to; without this every policy the chart
# renders (default deny, exactly the catalog's calls) would be accepted by the API and silently ignored.
ADDON_CONFIGURATION = {"vpc-cni": json.dumps({"enableNetworkPolicy": "true"})}
POST_NODE_ADDONS = ("coredns", "aws-ebs-csi-driver")


def _managed(partition: str, name: str) -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"


def ebs_csi_kms(key_arn: str) -> dict[str, Any]:
    """What the EBS CSI driver needs on a customer-managed key to create and attach encrypted volumes (the
    managed AmazonEBSCSIDriverPolicy covers only AWS-managed keys): grants for EC2, and the data-key calls."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": key_arn,
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": key_arn,
            },
        ],
    }


@dataclass(frozen=True, slots=True)
class ClusterArgs:
    """``config`` is the stack's validated ``cluster`` section (shop_platform.config.ClusterConfig): its rules
    (endpoint CIDRs, admins, node group bounds and shapes, supported versions) are checked there, once."""

    ctx: StackContext
    cluster_name: str
    config: ClusterConfig
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    # Resources the cluster must outlive on destroy (NAT routes: nodes need egress until they are gone).
    network_dependencies: list[pulumi.Resource] = field(default_factory=list)


def build_kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> dict[str, Any]:
    """A kubeconfig that authenticates with ``aws eks get-token`` (short-lived tokens, no static secret)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": cluster_name,
        "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "users": [
            {
                "name": cluster_name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
                    }
                },
            }
        ],
    }


def launch_template_metadata() -> aws.ec2.LaunchTemplateMetadataOptionsArgs:
    """IMDSv2 only, hop limit 1: a pod cannot reach the node's credentials through the metadata service."""
    return aws.ec2.LaunchTemplateMetadataOptionsArgs(
        http_endpoint="enabled",
        http_tokens="required",
        http_put_response_hop_limit=1,
        instance_metadata_tags="disabled",
    )


class Cluster(pulumi.ComponentResource):
    """EKS control plane, node groups, add-ons, IRSA plumbing and a Kubernetes provider for later layers."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    autoscaler_role_arn: pulumi.Output[str]
    volumes_kms_key_arn: pulumi.Output[str]
    k8s_provider: k8s.Provider

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:cluster:Cluster", name, None, opts)
        ctx, tags = args.ctx, args.ctx.tags
        child = pulumi.ResourceOptions(parent=self)
        part = ctx.partition

        role = aws.iam.Role(
            f"{name}-control-plane-role",
            assume_role_policy=json.dumps(iam.service_assume_role("eks.amazonaws.com")),
            tags=tags(),
            opts=child,
        )
        role_policy = aws.iam.RolePolicyAttachment(
            f"{name}-control-plane-policy",
            role=role.name,
            policy_arn=_managed(part, "AmazonEKSClusterPolicy"),
            opts=child,
        )
        secrets_key = encryption_key(f"{name}-secrets-key", ctx, f"{args.cluster_name} Kubernetes secrets", parent=self)
        encryption_policy = aws.iam.RolePolicy(
            f"{name}-control-plane-encryption",
            role=role.id,
            policy=secrets_key.arn.apply(lambda arn: json.dumps(iam.cluster_encryption(arn))),
            opts=child,
        )
        logs_key = encryption_key(
            f"{name}-logs-key",
            ctx,
            f"{args.cluster_name} control-plane logs",
            parent=self,
            service_grant=iam.logs_key_grant(ctx.account_id, ctx.region, ctx.partition),
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.config.log_retention_days,
            kms_key_id=logs_key.arn,
            tags=tags(),
            opts=child,
        )

        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.config.version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.private_subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=bool(args.config.public_access_cidrs),
                public_access_cidrs=list(args.config.public_access_cidrs) or None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"], provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn)
            ),
            enabled_cluster_log_types=list(LOG_TYPES),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=False
            ),
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=versions.EKS_SUPPORT_TYPE),
            # Managed add-ons below replace the self-managed defaults, so versions stay pinned.
            bootstrap_self_managed_addons=False,
            deletion_protection=ctx.prod,
            tags=tags(),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[role_policy, encryption_policy, log_group, *args.network_dependencies]
            ),
        )

        admin_access = []
        for access, principals, policy_arn in (
            ("admin", args.config.admin_role_arns, CLUSTER_ADMIN_POLICY),
            ("view", args.config.view_role_arns, CLUSTER_VIEW_POLICY),
        ):
            for i, principal in enumerate(principals):
                entry = aws.eks.AccessEntry(
                    f"{name}-{access}-{i}",
                    cluster_name=cluster.name,
                    principal_arn=principal,
                    type="STANDARD",
                    tags=tags(),
                    opts=child,
                )
                admin_access.append(
                    aws.eks.AccessPolicyAssociation(
                        f"{name}-{access}-{i}-policy",
                        cluster_name=cluster.name,
                        principal_arn=principal,
                        policy_arn=policy_arn,
                        access_scope={"type": "cluster"},
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
                    )
                )
        cluster_sg = cluster.vpc_config.apply(lambda v: v.cluster_security_group_id or "")
        for i, cidr in enumerate(args.config.private_access_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-from-private-{i}",
                security_group_id=cluster_sg,
                ip_protocol="tcp",
                from_port=API_PORT,
                to_port=API_PORT,
                cidr_ipv4=cidr,
                description="Kubernetes API (private endpoint) from a network routed to the VPC",
                tags=tags(),
                opts=child,
            )

        issuer: pulumi.Output[str] = cluster.identities.apply(
            lambda ids: (ids[0].oidcs[0].issuer or "") if ids and ids[0].oidcs else ""
        )
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"], tags=tags(), opts=child
        )

        def irsa(
            suffix: str, sa: str, *, policy: pulumi.Input[str] | None = None, managed: tuple[str, ...] = ()
        ) -> aws.iam.Role:
            return service_account_role(
                f"{name}-{suffix}",
                ctx,
                oidc_provider_arn=oidc.arn,
                oidc_issuer=issuer,
                namespace="kube-system",
                service_account=sa,
                parent=self,
                inline_policy=policy,
                managed_policy_arns=managed,
            )

        cni_role = irsa("vpc-cni-role", "aws-node", managed=(_managed(part, "AmazonEKS_CNI_Policy"),))
        # Every dynamically provisioned volume (the Kubernetes layer's default StorageClass) uses this key.
        volumes_key = encryption_key(f"{name}-volumes-key", ctx, f"{args.cluster_name} persistent volumes", parent=self)
        ebs_role = irsa(
            "ebs-csi-role",
            "ebs-csi-controller-sa",
            policy=volumes_key.arn.apply(lambda a: json.dumps(ebs_csi_kms(a))),
            managed=(_managed(part, "service-role/AmazonEBSCSIDriverPolicy"),),
        )
        autoscaler_role = irsa(
            "cluster-autoscaler-role",
            "cluster-autoscaler",
            policy=cluster.name.apply(lambda n: json.dumps(iam.cluster_autoscaler(n))),
        )

        def addon(addon_name: str, after: list[pulumi.Resource], sa_role: aws.iam.Role | None = None) -> aws.eks.Addon:
            return aws.eks.Addon(
                f"{name}-addon-{addon_name}",
                cluster_name=cluster.name,
                addon_name=addon_name,
                addon_version=versions.EKS_ADDON_VERSIONS[args.config.version][addon_name],
                service_account_role_arn=sa_role.arn if sa_role else None,
                configuration_values=ADDON_CONFIGURATION.get(addon_name),
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="PRESERVE",
                tags=tags(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=after),
            )

        pre_node = [addon(a, [], cni_role if a == "vpc-cni" else None) for a in PRE_NODE_ADDONS]

        node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps(iam.service_assume_role("ec2.amazonaws.com")),
            tags=tags(),
            opts=child,
        )
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{i}", role=node_role.name, policy_arn=_managed(part, p), opts=child
            )
            for i, p in enumerate(
                (
                    "AmazonEKSWorkerNodePolicy",
                    "AmazonEC2ContainerRegistryPullOnly",
                    # Session Manager instead of SSH: no key pairs, no port 22.
                    "AmazonSSMManagedInstanceCore",
                )
            )
        ]

        node_groups = []
        for spec in args.config.node_groups:
            lt = aws.ec2.LaunchTemplate(
                f"{name}-{spec.name}-lt",
                description=f"{args.cluster_name} {spec.name} nodes",
                metadata_options=launch_template_metadata(),
                block_device_mappings=[
                    aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                        device_name="/dev/xvda",
                        ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                            volume_size=spec.disk_gib, volume_type="gp3", encrypted="true", delete_on_termination="true"
                        ),
                    )
                ],
                tag_specifications=[
                    aws.ec2.LaunchTemplateTagSpecificationArgs(
                        resource_type=rt, tags=tags(Name=f"{args.cluster_name}-{spec.name}")
                    )
                    for rt in ("instance", "volume", "network-interface")
                ],
                update_default_version=True,
                tags=tags(),
                opts=child,
            )
            node_groups.append(
                aws.eks.NodeGroup(
                    f"{name}-{spec.name}",
                    cluster_name=cluster.name,
                    node_group_name=spec.name,
                    node_role_arn=node_role.arn,
                    subnet_ids=args.private_subnet_ids,
                    ami_type=versions.NODE_AMI_TYPE,
                    capacity_type="ON_DEMAND",
                    instance_types=list(spec.instance_types),
                    scaling_config={
                        "min_size": spec.min_size,
                        "max_size": spec.max_size,
                        "desired_size": spec.desired_size,
                    },
                    update_config={"max_unavailable": 1},
                    launch_template={"id": lt.id, "version": lt.latest_version.apply(str)},
                    labels={"shop/node-group": spec.name},
                    tags=tags(),
                    # The autoscaler owns desired size after creation; Pulumi must not reset it on every up.
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        depends_on=[*node_policies, *pre_node],
                        ignore_changes=["scalingConfig.desiredSize"],
                    ),
                )
            )

        post_node = [
            addon(a, list(node_groups), ebs_role if a == "aws-ebs-csi-driver" else None) for a in POST_NODE_ADDONS
        ]

        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer = issuer
        self.cluster_security_group_id = cluster_sg
        self.autoscaler_role_arn = autoscaler_role.arn
        self.volumes_kms_key_arn = volumes_key.arn
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name, cluster.endpoint, cluster.certificate_authority.apply(lambda c: c.data)
            ).apply(lambda v: json.dumps(build_kubeconfig(v[0], v[1], v[2] or "", ctx.region)))
        )
        # Everything Kubernetes-side goes through this provider. Its dependencies make destroy delete those
        # objects first, while nodes, CSI driver and controllers can still release EBS volumes and targets.
        self.k8s_provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*node_groups, *post_node, *pre_node, *admin_access]),
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "endpoint": self.endpoint,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
                "cluster_security_group_id": self.cluster_security_group_id,
            }
        )
