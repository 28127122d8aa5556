"""EKS rules: secrets envelope-encrypted, API endpoint not open to the world, control-plane logs, a supported
version, nodes that keep pods away from instance credentials. FSBP EKS controls in brackets."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, Final

from retail_policies._support import Context, Rule, get, items, number, resource_policy, truthy

CLUSTER: Final = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE: Final = "aws:ec2/launchTemplate:LaunchTemplate"
DOCS: Final = "https://docs.aws.amazon.com/securityhub/latest/userguide/eks-controls.html"

# Versions in EKS standard support (https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html).
# Extended support costs 6x per cluster-hour and delays fixes. Override per stack with policy config
# ``supportedVersions``; tests/policies check this list agrees with shop_platform.versions.
SUPPORTED_VERSIONS: Final = ("1.34", "1.35")
LOG_TYPES: Final = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# A public endpoint may list operator/CI egress ranges; anything broader than this is "the world".
MIN_PUBLIC_PREFIX: Final = 16


def check_secrets_encryption(props: Any, ctx: Context) -> Iterable[str]:
    configs = items(get(props, "encryptionConfig"))
    single = get(props, "encryptionConfig")
    if not configs and single is not None:  # pulumi-aws v6+ takes one object, older versions a list
        configs = [single]
    for cfg in configs:
        if "secrets" in items(get(cfg, "resources")) and get(cfg, "provider", "keyArn"):
            return
    yield (
        "Kubernetes secrets are not envelope-encrypted: set encryption_config={resources: ['secrets'], "
        "provider: {key_arn: <KMS key>}} [EKS.3]"
    )


def check_endpoint(props: Any, ctx: Context) -> Iterable[str]:
    vpc = get(props, "vpcConfig", default={})
    public = get(vpc, "endpointPublicAccess")
    if public is None:
        yield (
            "vpcConfig.endpointPublicAccess is not set: EKS then opens the API endpoint to 0.0.0.0/0. "
            "Set endpoint_public_access=False, or True with public_access_cidrs naming your egress ranges"
        )
        return
    if not truthy(public):
        if not truthy(get(vpc, "endpointPrivateAccess")):
            yield "both endpoints are off: nothing could reach the API; set endpoint_private_access=True"
        return
    if ctx.environment == "prod":
        yield (
            "the public endpoint is on in prod: FSBP EKS.1 fails whatever the CIDRs; set "
            "endpoint_public_access=False and reach the private endpoint from a routed network "
            "(cluster.privateAccessCidrs) [EKS.1]"
        )
        return
    cidrs = [str(c) for c in items(get(vpc, "publicAccessCidrs"))]
    if not cidrs:
        yield (
            "the public endpoint is on without publicAccessCidrs: EKS opens it to 0.0.0.0/0. List the "
            "operators' VPN and CI egress CIDRs (cluster.publicAccessCidrs) or turn the public endpoint off"
        )
        return
    min_prefix = int(number(ctx.config.get("minPublicPrefix")) or MIN_PUBLIC_PREFIX)
    for cidr in cidrs:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            yield f"publicAccessCidrs has {cidr!r}, which is not a CIDR"
            continue
        if net.prefixlen < min_prefix:
            yield (
                f"publicAccessCidrs has {cidr}: broader than /{min_prefix} is open to the world in practice; "
                "list only the operators' VPN and CI runners' egress ranges"
            )


def check_logs(props: Any, ctx: Context) -> Iterable[str]:
    enabled = {str(t) for t in items(get(props, "enabledClusterLogTypes"))}
    missing = [t for t in LOG_TYPES if t not in enabled]
    if missing:
        yield (
            f"control-plane log types {missing} are off; set enabled_cluster_log_types={list(LOG_TYPES)} "
            "(audit and authenticator logs are what an incident review needs) [EKS.8]"
        )


def check_version(props: Any, ctx: Context) -> Iterable[str]:
    allowed = tuple(str(v) for v in items(ctx.config.get("supportedVersions"))) or SUPPORTED_VERSIONS
    version = get(props, "version")
    if version is None:
        yield (
            f"version is not pinned (EKS picks its default, upgrades become accidental); pin one of "
            f"{list(allowed)} (cluster.version)"
        )
    elif str(version) not in allowed:
        yield (
            f"version {version} is not in EKS standard support here; use one of {list(allowed)} "
            "(cluster.version) [EKS.2]"
        )
    if get(props, "upgradePolicy", "supportType") == "EXTENDED":
        yield "upgradePolicy.supportType is EXTENDED: the cluster would silently enter paid extended support"


def check_imdsv2(props: Any, ctx: Context) -> Iterable[str]:
    meta = get(props, "metadataOptions", default={})
    if get(meta, "httpTokens") != "required":
        yield (
            "metadataOptions.httpTokens is not 'required': IMDSv1 lets any pod on the node read the node "
            "role's credentials; set http_tokens='required'"
        )
    hops = number(get(meta, "httpPutResponseHopLimit"))
    if hops is None or hops > 1:
        yield (
            "metadataOptions.httpPutResponseHopLimit is not 1: pods (one hop further) can reach the "
            "metadata service; set http_put_response_hop_limit=1 and give pods IRSA roles"
        )


POLICIES: Final[list[Rule]] = [
    resource_policy(
        "eks-secrets-encryption",
        "EKS envelope-encrypts Kubernetes secrets with KMS [EKS.3]",
        (CLUSTER,),
        check_secrets_encryption,
        remediation="encryption_config with resources=['secrets']",
        url=DOCS,
    ),
    resource_policy(
        "eks-endpoint-not-public",
        "The EKS API endpoint is private or limited to known CIDRs [EKS.1]",
        (CLUSTER,),
        check_endpoint,
        remediation="endpoint_public_access=False, or public_access_cidrs=[VPN, CI egress]",
        config_schema={"minPublicPrefix": {"type": "integer", "minimum": 0, "maximum": 32}},
        url=DOCS,
    ),
    resource_policy(
        "eks-control-plane-logs",
        "All EKS control-plane log types are enabled [EKS.8]",
        (CLUSTER,),
        check_logs,
        remediation=f"enabled_cluster_log_types={list(LOG_TYPES)}",
        url=DOCS,
    ),
    resource_policy(
        "eks-supported-version",
        "EKS runs a pinned version in standard support [EKS.2]",
        (CLUSTER,),
        check_version,
        remediation="cluster.version: one of the supported versions",
        config_schema={"supportedVersions": {"type": "array", "items": {"type": "string"}}},
        url=DOCS,
    ),
    resource_policy(
        "ec2-launch-template-imdsv2",
        "Node launch templates require IMDSv2 with hop limit 1",
        (LAUNCH_TEMPLATE,),
        check_imdsv2,
        remediation="metadata_options: http_tokens='required', http_put_response_hop_limit=1",
        url="https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html",
    ),
]
