"""Stack configuration: read once, validated into a typed object before any resource is declared.

Every check names the config key and what is allowed, so a bad ``Pulumi.<stack>.yaml`` fails in the first
second of ``pulumi preview`` (or of the offline plan) instead of half-way through an apply.

``parse_stack_config`` is pure (a mapping in, a ``StackConfig`` out) so each rule is tested without Pulumi;
``load_stack_config`` only gathers the raw values from ``pulumi.Config``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from shop_platform import versions

if TYPE_CHECKING:  # the Kubernetes layer's config imports ConfigError from here: import it lazily at run time
    from shop_platform.images import RegistryStackConfig
    from shop_platform.k8s.stackconfig import KubernetesConfig, LocalStackConfig

PROJECT: Final = "retail-platform"

Environment = Literal["dev", "prod"]
ENVIRONMENTS: Final[tuple[str, ...]] = ("dev", "prod")
NatMode = Literal["single", "per_az"]

# Graviton classes only: cheaper per vCPU, and every class here supports Performance Insights and
# encryption at rest (the micro/small burstables do not all support Performance Insights).
DB_INSTANCE_CLASSES: Final[frozenset[str]] = frozenset({
    "db.t4g.medium", "db.t4g.large", "db.m7g.large", "db.m7g.xlarge", "db.m7g.2xlarge",
    "db.r7g.large", "db.r7g.xlarge", "db.r7g.2xlarge",
})
# Nodes run the ARM AMI (versions.NODE_AMI_TYPE), so only Graviton instance types are allowed; each with its
# shape (vCPUs, GiB of memory; EC2 instance type specifications). Cluster Autoscaler simulates a node
# group's scale-up with ONE template node, so every type in a group must have the same shape (EKS best
# practices, Cluster Autoscaler: "node groups ... with instance types that have the same CPU and memory");
# otherwise a pending pod sized for 4 vCPU/16 GiB can start a 2 vCPU/8 GiB node that never fits it. Two
# generations of one size (m7g.xlarge, m6g.xlarge) keep a fallback when one is short in an AZ.
NODE_INSTANCE_SHAPES: Final[dict[str, tuple[int, int]]] = {
    "t4g.large": (2, 8), "t4g.xlarge": (4, 16),
    "m6g.large": (2, 8), "m6g.xlarge": (4, 16), "m6g.2xlarge": (8, 32),
    "m7g.large": (2, 8), "m7g.xlarge": (4, 16), "m7g.2xlarge": (8, 32),
    "c7g.large": (2, 4), "c7g.xlarge": (4, 8), "c7g.2xlarge": (8, 16),
    "r7g.large": (2, 16), "r7g.xlarge": (4, 32),
}
NODE_INSTANCE_TYPES: Final[frozenset[str]] = frozenset(NODE_INSTANCE_SHAPES)
LOG_RETENTION_DAYS: Final[tuple[int, ...]] = (7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)

_DOMAIN: Final = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_REGION: Final = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ROLE_ARN: Final = re.compile(r"^arn:aws(-[a-z]+)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_LABEL: Final = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")


class ConfigError(ValueError):
    """A stack config value is invalid; the message names the key and what is allowed."""

    def __init__(self, key: str, problem: str, allowed: str) -> None:
        self.key = key
        super().__init__(f"config {PROJECT}:{key}: {problem}; allowed: {allowed}")


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    cidr: str
    az_count: int
    nat_gateways: NatMode
    flow_log_retention_days: int


@dataclass(frozen=True, slots=True)
class NodeGroupConfig:
    name: str
    instance_types: tuple[str, ...]
    min_size: int
    max_size: int
    desired_size: int
    disk_gib: int


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    version: str
    public_access_cidrs: tuple[str, ...]
    admin_role_arns: tuple[str, ...]
    view_role_arns: tuple[str, ...]
    private_access_cidrs: tuple[str, ...]
    node_groups: tuple[NodeGroupConfig, ...]
    log_retention_days: int


@dataclass(frozen=True, slots=True)
class DatabasesConfig:
    instance_class: str
    allocated_gib: int
    max_allocated_gib: int
    multi_az: bool
    deletion_protection: bool
    backup_retention_days: int


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    rate_limit_per_5min: int
    login_rate_limit_per_5min: int
    login_path: str
    shield_advanced: bool
    alert_email: str | None
    log_retention_days: int


@dataclass(frozen=True, slots=True)
class StackConfig:
    stack: str
    environment: Environment
    region: str
    owner: str
    domain: str
    create_zone: bool
    network: NetworkConfig
    cluster: ClusterConfig
    databases: DatabasesConfig
    edge: EdgeConfig
    kubernetes: KubernetesConfig  # the ``kubernetes`` object: image tag, alerting, log/metric retention

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def cluster_name(self) -> str:
        return f"shop-{self.stack}"

    @property
    def api_domain(self) -> str:
        return f"api.{self.domain}"


# --- helpers: each takes the dotted key so errors name it ---------------------------------------------------

def _obj(raw: Mapping[str, Any], key: str, allowed_keys: set[str]) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(key, "is not an object", f"a mapping with keys {sorted(allowed_keys)}") from None
    if not isinstance(value, Mapping):
        raise ConfigError(key, "is not an object", f"a mapping with keys {sorted(allowed_keys)}")
    unknown = set(value) - allowed_keys
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}", "is not a known key", ", ".join(sorted(allowed_keys)))
    return value


def _str(obj: Mapping[str, Any], key: str, field: str, default: str | None = None) -> str:
    value = obj.get(field, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"missing or not a string ({value!r})", "a non-empty string")
    return value


def _int(obj: Mapping[str, Any], key: str, field: str, default: int, lo: int, hi: int) -> int:
    value = obj.get(field, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(key, f"{value!r} is out of range", f"an integer {lo}..{hi}")
    return value


def _bool(obj: Mapping[str, Any], key: str, field: str, default: bool) -> bool:
    value = obj.get(field, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(key, f"{value!r} is not a boolean", "true or false")
    return value


def _choice(value: object, key: str, allowed: tuple[str, ...] | frozenset[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(key, f"{value!r} is not allowed", ", ".join(sorted(allowed)))
    return value


def _str_list(obj: Mapping[str, Any], key: str, field: str) -> tuple[str, ...]:
    value = obj.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, f"{value!r} is not a list of strings", "a list of strings")
    return tuple(value)


def _retention(obj: Mapping[str, Any], key: str, field: str, default: int) -> int:
    value = _int(obj, key, field, default, 1, 3653)
    if value not in LOG_RETENTION_DAYS:
        raise ConfigError(key, f"{value} is not a CloudWatch retention period", str(LOG_RETENTION_DAYS))
    return value


# --- sections -----------------------------------------------------------------------------------------------

def _network(raw: Mapping[str, Any], env: str) -> NetworkConfig:
    obj = _obj(raw, "network", {"cidr", "azCount", "natGateways", "flowLogRetentionDays"})
    cidr = _str(obj, "network.cidr", "cidr", "10.20.0.0/16")
    try:
        net = ipaddress.IPv4Network(cidr, strict=True)
    except ValueError:
        raise ConfigError("network.cidr", f"{cidr!r} is not an IPv4 network in CIDR form",
                          "a private IPv4 CIDR such as 10.20.0.0/16 (host bits zero)") from None
    if not net.is_private or not 16 <= net.prefixlen <= 20:
        raise ConfigError("network.cidr", f"{cidr} is not a private /16../20",
                          "an RFC 1918 network with prefix length 16..20")
    az_count = _int(obj, "network.azCount", "azCount", 3 if env == "prod" else 2, 2, 3)
    nat = _choice(obj.get("natGateways", "per_az" if env == "prod" else "single"), "network.natGateways",
                  ("single", "per_az"))
    if env == "prod" and nat != "per_az":
        raise ConfigError("network.natGateways", "prod needs one NAT gateway per AZ (an AZ outage must not "
                          "cut every node's egress)", "per_az in prod")
    if env == "prod" and az_count < 3:
        raise ConfigError("network.azCount", f"prod needs 3 AZs, got {az_count}", "3 in prod")
    retention = _retention(obj, "network.flowLogRetentionDays", "flowLogRetentionDays",
                           365 if env == "prod" else 30)
    return NetworkConfig(str(net), az_count, "per_az" if nat == "per_az" else "single", retention)


def _node_group(obj: Mapping[str, Any], idx: int) -> NodeGroupConfig:
    key = f"cluster.nodeGroups[{idx}]"
    if not isinstance(obj, Mapping):
        raise ConfigError(key, "is not an object", "a mapping")
    unknown = set(obj) - {"name", "instanceTypes", "minSize", "maxSize", "desiredSize", "diskGib"}
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}", "is not a known key",
                          "name, instanceTypes, minSize, maxSize, desiredSize, diskGib")
    name = _str(obj, f"{key}.name", "name")
    if not _LABEL.match(name):
        raise ConfigError(f"{key}.name", f"{name!r} is not a DNS label", "lowercase letters, digits, '-'")
    types = _str_list(obj, f"{key}.instanceTypes", "instanceTypes")
    if not types:
        raise ConfigError(f"{key}.instanceTypes", "is empty", ", ".join(sorted(NODE_INSTANCE_TYPES)))
    for t in types:
        _choice(t, f"{key}.instanceTypes", NODE_INSTANCE_TYPES)
    shapes = {NODE_INSTANCE_SHAPES[t] for t in types}
    if len(shapes) > 1:
        listed = ", ".join(f"{t} ({c} vCPU/{m} GiB)" for t, (c, m) in ((t, NODE_INSTANCE_SHAPES[t]) for t in types))
        raise ConfigError(f"{key}.instanceTypes", f"mixes instance sizes: {listed}",
                          "types of one vCPU/memory size per node group (Cluster Autoscaler sizes scale-ups "
                          "from one of them); declare one node group per size")
    lo = _int(obj, f"{key}.minSize", "minSize", 2, 1, 100)
    hi = _int(obj, f"{key}.maxSize", "maxSize", 6, 1, 100)
    desired = _int(obj, f"{key}.desiredSize", "desiredSize", lo, 1, 100)
    if not lo <= desired <= hi:
        raise ConfigError(f"{key}.desiredSize", f"{desired} is outside minSize..maxSize ({lo}..{hi})",
                          "minSize <= desiredSize <= maxSize")
    disk = _int(obj, f"{key}.diskGib", "diskGib", 50, 20, 500)
    return NodeGroupConfig(name, types, lo, hi, desired, disk)


def _cidr(value: str, key: str, allowed: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ConfigError(key, f"{value!r} is not a CIDR", allowed) from None


def _role_arns(obj: Mapping[str, Any], key: str, field: str) -> tuple[str, ...]:
    roles = _str_list(obj, key, field)
    for r in roles:
        if not _ROLE_ARN.match(r):
            raise ConfigError(key, f"{r!r} is not an IAM role ARN", "arn:aws:iam::<12 digits>:role/<name>")
    return roles


def _cluster(raw: Mapping[str, Any], env: str) -> ClusterConfig:
    obj = _obj(raw, "cluster", {"version", "publicAccessCidrs", "privateAccessCidrs", "adminRoleArns",
                                "viewRoleArns", "nodeGroups", "logRetentionDays"})
    version = _choice(str(obj.get("version", versions.DEFAULT_EKS_VERSION)), "cluster.version",
                      versions.SUPPORTED_EKS_VERSIONS)
    cidrs = _str_list(obj, "cluster.publicAccessCidrs", "publicAccessCidrs")
    if env == "prod" and cidrs:
        raise ConfigError("cluster.publicAccessCidrs", "prod's API endpoint is private-only (FSBP EKS.1 fails "
                          "whenever the public endpoint is on, whatever the CIDRs)",
                          "an empty list in prod; let CI reach the private endpoint from a network listed in "
                          "cluster.privateAccessCidrs (platform/README.md, 'Reaching the EKS API')")
    for c in cidrs:
        net = _cidr(c, "cluster.publicAccessCidrs",
                    "CIDRs of the operators' and CI runners' egress, e.g. 203.0.113.0/24")
        if net.prefixlen < 8:
            raise ConfigError("cluster.publicAccessCidrs", f"{c} opens the API endpoint to (nearly) everyone",
                              "prefix length >= 8; leave the list empty for a private-only endpoint")
    private = _str_list(obj, "cluster.privateAccessCidrs", "privateAccessCidrs")
    for c in private:
        allowed = "RFC 1918 IPv4 CIDRs of networks routed to the VPC (peering, Transit Gateway, VPN)"
        pnet = _cidr(c, "cluster.privateAccessCidrs", allowed)
        if pnet.version != 4 or not pnet.is_private:
            raise ConfigError("cluster.privateAccessCidrs", f"{c} is not a private IPv4 network", allowed)
    roles = _role_arns(obj, "cluster.adminRoleArns", "adminRoleArns")
    if not roles:
        raise ConfigError("cluster.adminRoleArns", "is empty: nobody could reach the cluster (access entries "
                          "replace the creator's implicit admin)", "at least one IAM role ARN")
    viewers = _role_arns(obj, "cluster.viewRoleArns", "viewRoleArns")
    if set(viewers) & set(roles):
        raise ConfigError("cluster.viewRoleArns", "names a role that is also an admin (one access entry per "
                          "principal)", "roles not listed in cluster.adminRoleArns")
    groups_raw = obj.get("nodeGroups", [{"name": "general", "instanceTypes": ["m7g.large"]}])
    if not isinstance(groups_raw, list) or not groups_raw:
        raise ConfigError("cluster.nodeGroups", "is empty or not a list", "a list of node group objects")
    groups = tuple(_node_group(g, i) for i, g in enumerate(groups_raw))
    if len({g.name for g in groups}) != len(groups):
        raise ConfigError("cluster.nodeGroups", "node group names repeat", "unique names")
    if env == "prod" and sum(g.min_size for g in groups) < 3:
        raise ConfigError("cluster.nodeGroups", "prod needs at least 3 nodes in total (one per AZ)",
                          "sum of minSize >= 3 in prod")
    retention = _retention(obj, "cluster.logRetentionDays", "logRetentionDays", 365 if env == "prod" else 30)
    return ClusterConfig(version, cidrs, roles, viewers, private, groups, retention)


def _databases(raw: Mapping[str, Any], env: str) -> DatabasesConfig:
    obj = _obj(raw, "databases", {"instanceClass", "allocatedGib", "maxAllocatedGib", "multiAz",
                                  "deletionProtection", "backupRetentionDays"})
    prod = env == "prod"
    klass = _choice(obj.get("instanceClass", "db.t4g.medium"), "databases.instanceClass", DB_INSTANCE_CLASSES)
    allocated = _int(obj, "databases.allocatedGib", "allocatedGib", 20, 20, 16384)
    max_alloc = _int(obj, "databases.maxAllocatedGib", "maxAllocatedGib", allocated * 5, 20, 65536)
    if max_alloc < allocated:
        raise ConfigError("databases.maxAllocatedGib", f"{max_alloc} < allocatedGib {allocated}",
                          ">= allocatedGib (storage autoscaling ceiling)")
    multi_az = _bool(obj, "databases.multiAz", "multiAz", prod)
    if prod and not multi_az:
        raise ConfigError("databases.multiAz", "prod without multi-AZ loses the database with one AZ",
                          "true in prod")
    deletion = _bool(obj, "databases.deletionProtection", "deletionProtection", prod)
    if prod and not deletion:
        raise ConfigError("databases.deletionProtection", "prod databases must be deletion-protected",
                          "true in prod")
    backups = _int(obj, "databases.backupRetentionDays", "backupRetentionDays", 14 if prod else 7, 7, 35)
    return DatabasesConfig(klass, allocated, max_alloc, multi_az, deletion, backups)


def _edge(raw: Mapping[str, Any], env: str) -> EdgeConfig:
    obj = _obj(raw, "edge", {"rateLimitPer5Min", "loginRateLimitPer5Min", "loginPath", "shieldAdvanced",
                             "alertEmail", "logRetentionDays"})
    rate = _int(obj, "edge.rateLimitPer5Min", "rateLimitPer5Min", 2000, 100, 2_000_000_000)
    login = _int(obj, "edge.loginRateLimitPer5Min", "loginRateLimitPer5Min", 100, 10, 2_000_000_000)
    if login >= rate:
        raise ConfigError("edge.loginRateLimitPer5Min", f"{login} is not stricter than rateLimitPer5Min {rate}",
                          "a limit below edge.rateLimitPer5Min")
    path = _str(obj, "edge.loginPath", "loginPath", "/api/v1/sessions")
    if not re.fullmatch(r"/[A-Za-z0-9/_.-]*", path):
        raise ConfigError("edge.loginPath", f"{path!r} is not a URL path", "a path starting with '/'")
    shield = _bool(obj, "edge.shieldAdvanced", "shieldAdvanced", env == "prod")
    if env == "prod" and not shield:
        raise ConfigError("edge.shieldAdvanced", "prod runs with Shield Advanced protections",
                          "true in prod (the account must hold a Shield Advanced subscription)")
    email = obj.get("alertEmail")
    if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
        raise ConfigError("edge.alertEmail", f"{email!r} is not an e-mail address", "name@example.com or unset")
    retention = _retention(obj, "edge.logRetentionDays", "logRetentionDays", 365 if env == "prod" else 30)
    return EdgeConfig(rate, login, path, shield, email, retention)


def parse_stack_config(stack: str, raw: Mapping[str, Any], region: str | None) -> StackConfig:
    """Validate the raw ``retail-platform:*`` values (keys without the project prefix) of one stack."""
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(unknown[0], "is not a known key (a typo would silently fall back to a default)",
                          ", ".join(TOP_LEVEL_KEYS))
    env = _choice(raw.get("environment", stack), "environment", ENVIRONMENTS)
    if region is None or not _REGION.match(region):
        raise ConfigError("aws:region", f"{region!r} is not an AWS region", "e.g. eu-west-1 (set aws:region)")
    owner = _str(raw, "owner", "owner")
    if not _LABEL.match(owner):
        raise ConfigError("owner", f"{owner!r} is not a tag-safe team name", "lowercase letters, digits, '-'")
    domain = _str(raw, "domain", "domain").lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise ConfigError("domain", f"{domain!r} is not a DNS domain name",
                          "a registered domain such as shop.example.com (labels of a-z, 0-9, '-')")
    return StackConfig(
        stack=stack,
        environment="prod" if env == "prod" else "dev",
        region=region,
        owner=owner,
        domain=domain,
        create_zone=_bool(raw, "createZone", "createZone", False),
        network=_network(raw, env),
        cluster=_cluster(raw, env),
        databases=_databases(raw, env),
        edge=_edge(raw, env),
        kubernetes=_kubernetes(raw, env),
    )


def _kubernetes(raw: Mapping[str, Any], env: str) -> KubernetesConfig:
    from shop_platform.k8s.stackconfig import parse_kubernetes_config

    return parse_kubernetes_config(raw, env)


LOCAL_ENVIRONMENT: Final = "local"
REGISTRY_ENVIRONMENT: Final = "registry"


def parse_any_stack_config(stack: str, raw: Mapping[str, Any],
                           region: str | None) -> StackConfig | LocalStackConfig | RegistryStackConfig:
    """A ``local`` (kind) stack has no AWS keys and its own rules (shop_platform.k8s.stackconfig), the
    ``registry`` stack holds only the shared image registry (shop_platform.images); every other stack is an AWS
    stack (``parse_stack_config``)."""
    if raw.get("environment", stack) == REGISTRY_ENVIRONMENT:
        from shop_platform.images import parse_registry_stack_config

        return parse_registry_stack_config(stack, raw, region)
    if raw.get("environment", stack) == LOCAL_ENVIRONMENT:
        from shop_platform.k8s.stackconfig import parse_local_config

        return parse_local_config(stack, raw)
    return parse_stack_config(stack, raw, region)


TOP_LEVEL_KEYS: Final[tuple[str, ...]] = (
    "environment", "owner", "domain", "createZone", "network", "cluster", "databases", "edge", "kubernetes",
)


def load_stack_config() -> StackConfig | LocalStackConfig | RegistryStackConfig:
    """Read this stack's config from Pulumi (once, in ``stacks/__main__.py``) and validate it."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env

    # Every key of this project, so a misspelt one is reported instead of ignored. The engine hands config to
    # the program in the runtime's config map (or PULUMI_CONFIG); pulumi.Config offers no way to list keys.
    prefix = f"{PROJECT}:"
    raw: dict[str, Any] = {k.removeprefix(prefix): v for k, v in {**get_config_env(), **CONFIG.get()}.items()
                           if k.startswith(prefix)}
    return parse_any_stack_config(pulumi.get_stack(), raw, pulumi.Config("aws").get("region"))
