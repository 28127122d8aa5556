"""Stack configuration: pydantic models, validated before any resource is declared.

Every stack (``Pulumi.<stack>.yaml``) is one model: ``StackConfig`` (dev, prod: AWS), ``LocalStackConfig``
(kind) or ``RegistryStackConfig`` (the shared image registry). Each section is a model of its own with
``extra="forbid"`` (a misspelt key is an error, never a silent default), camelCase aliases (the keys of the
stack file), bounds on its fields and model validators for the rules that span fields or depend on the
environment. The components take their section as (part of) their args, so a rule lives here once.

An error names the key, the problem and what is allowed (``ConfigError``); ``validate`` maps pydantic's errors
to that form in one place, taking what is allowed from the model's JSON schema: the same text
``platform/README.md``'s config tables are generated from (``python -m tools.docgen write``).

Defaults that differ by environment (``ENV_DEFAULTS``) are filled in from the validation context, so one model
serves dev, prod and local.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from services import catalog
from shop_platform import versions

PROJECT: Final = "retail-platform"

Environment = Literal["dev", "prod"]
ENVIRONMENTS: Final[tuple[str, ...]] = ("dev", "prod")
LOCAL_ENVIRONMENT: Final = "local"
REGISTRY_ENVIRONMENT: Final = "registry"
NatMode = Literal["single", "per_az"]

# Graviton classes only: cheaper per vCPU, and every class here supports Performance Insights and
# encryption at rest (the micro/small burstables do not all support Performance Insights).
DB_INSTANCE_CLASSES: Final[frozenset[str]] = frozenset(
    {
        "db.t4g.medium",
        "db.t4g.large",
        "db.m7g.large",
        "db.m7g.xlarge",
        "db.m7g.2xlarge",
        "db.r7g.large",
        "db.r7g.xlarge",
        "db.r7g.2xlarge",
    }
)
# Nodes run the ARM AMI (versions.NODE_AMI_TYPE), so only Graviton instance types are allowed; each with its
# shape (vCPUs, GiB of memory; EC2 instance type specifications). Cluster Autoscaler simulates a node
# group's scale-up with ONE template node, so every type in a group must have the same shape (EKS best
# practices, Cluster Autoscaler: "node groups ... with instance types that have the same CPU and memory");
# otherwise a pending pod sized for 4 vCPU/16 GiB can start a 2 vCPU/8 GiB node that never fits it. Two
# generations of one size (m7g.xlarge, m6g.xlarge) keep a fallback when one is short in an AZ.
NODE_INSTANCE_SHAPES: Final[dict[str, tuple[int, int]]] = {
    "t4g.large": (2, 8),
    "t4g.xlarge": (4, 16),
    "m6g.large": (2, 8),
    "m6g.xlarge": (4, 16),
    "m6g.2xlarge": (8, 32),
    "m7g.large": (2, 8),
    "m7g.xlarge": (4, 16),
    "m7g.2xlarge": (8, 32),
    "c7g.large": (2, 4),
    "c7g.xlarge": (4, 8),
    "c7g.2xlarge": (8, 16),
    "r7g.large": (2, 16),
    "r7g.xlarge": (4, 32),
}
NODE_INSTANCE_TYPES: Final[frozenset[str]] = frozenset(NODE_INSTANCE_SHAPES)
LOG_RETENTION_DAYS: Final[tuple[int, ...]] = (7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)
# kind profiles: "full" runs everything EKS runs; "light" leaves out the log pipeline (ECK, Elasticsearch,
# Kibana, Logstash, Fluent Bit) so the stack fits an 8 GB laptop (figures in charts/README.md).
KindProfile = Literal["full", "light"]
DEFAULT_IMAGE_TAG: Final = "0.1.0"
DEFAULT_ADMIN_EMAIL: Final = "admin@shop.local"

REGION: Final = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
ECR_HOST: Final = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d)\.amazonaws\.com$")
DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
_DOMAIN: Final = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ROLE_ARN: Final = re.compile(r"^arn:aws(-[a-z]+)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_LABEL: Final = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
_TAG: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ACCOUNT: Final = re.compile(r"^\d{12}$")


class ConfigError(ValueError):
    """A stack config value is invalid; the message names the key and what is allowed."""

    def __init__(self, key: str, problem: str, allowed: str) -> None:
        self.key = key
        super().__init__(f"config {PROJECT}:{key}: {problem}; allowed: {allowed}")


class Invalid(ValueError):
    """Raised by the models' validators: the problem and what is allowed, for ``validate`` to name the key.

    ``at`` is a key below the validator's own location (a rule on a section names the field it is about)."""

    def __init__(self, problem: str, allowed: str, at: str = "") -> None:
        super().__init__(problem)
        self.problem, self.allowed, self.at = problem, allowed, at


# --- value types: what a stack file may spell, and nothing looser ---------------------------------------------


def _int_like(value: object) -> object:
    """The engine hands top-level values over as strings, YAML may give 3.0: both are integers; a bool is not."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _bool_word(value: object) -> object:
    """``true``/``false`` only (pydantic's lax bool would read ``yes``, ``on`` or ``1`` as true)."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _choices(values: Iterable[str | int]) -> dict[str, JsonValue]:
    """A JSON schema ``enum`` for a choice a validator checks (so the README and the errors list it)."""
    enum: list[JsonValue] = list(values)
    return {"enum": enum}


def _retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise Invalid(f"{value} is not a CloudWatch retention period", str(LOG_RETENTION_DAYS))
    return value


Int = Annotated[int, BeforeValidator(_int_like), Strict()]
Bool = Annotated[bool, BeforeValidator(_bool_word), Strict()]
Retention = Annotated[
    Int, AfterValidator(_retention), Field(ge=1, le=3653, json_schema_extra=_choices(LOG_RETENTION_DAYS))
]


def _label(what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _LABEL.match(value):
            raise Invalid(f"{value!r} is not {what}", "lowercase letters, digits, '-'")
        return value

    return AfterValidator(check)


def _one_of(allowed: tuple[str, ...] | frozenset[str]) -> AfterValidator:
    """A choice among values kept in a tuple elsewhere (versions, instance classes): listed in the schema too."""

    def check(value: str) -> str:
        if value not in allowed:
            raise Invalid(f"{value!r} is not allowed", ", ".join(sorted(allowed)))
        return value

    return AfterValidator(check)


def _env(info: ValidationInfo) -> str:
    return str((info.context or {}).get("environment", "dev"))


class Section(BaseModel):
    """One object of a stack file: camelCase keys, nothing unknown, immutable once validated."""

    # Keys by their camelCase alias only (``az_count`` is a typo of ``azCount``, not a synonym); defaults are
    # validated like values, so an environment's rules apply to them too.
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, validate_default=True)
    # Defaults that differ by environment, by key: {"dev": ..., "prod": ..., "local": ...} (local: dev's unless given).
    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, object]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _object_with_env_defaults(cls, data: object, info: ValidationInfo) -> object:
        if isinstance(data, str):  # the engine hands structured values over as JSON
            try:
                data = json.loads(data)
            except json.JSONDecodeError:
                raise Invalid("is not an object", f"a mapping with keys {', '.join(_keys(cls))}") from None
        if not isinstance(data, Mapping):
            raise Invalid("is not an object", f"a mapping with keys {', '.join(_keys(cls))}")
        env = _env(info)
        filled = {key: by_env.get(env, by_env["dev"]) for key, by_env in cls.ENV_DEFAULTS.items() if key not in data}
        # A section left out is an empty object: its defaults and rules are those of this environment.
        filled |= {
            f.alias or name: {}
            for name, f in cls.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, Section) and (f.alias or name) not in data
        }
        return {**filled, **data}


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


# --- AWS stacks (dev, prod) ---------------------------------------------------------------------------------------


class NetworkConfig(Section):
    """``network``: the VPC."""

    ENV_DEFAULTS: ClassVar = {
        "azCount": {"dev": 2, "prod": 3},
        "natGateways": {"dev": "single", "prod": "per_az"},
        "flowLogRetentionDays": {"dev": 30, "prod": 365},
    }

    cidr: str = Field("10.20.0.0/16", description="RFC 1918 IPv4 network, prefix /16../20, host bits zero")
    az_count: Int = Field(2, ge=2, le=3, description="availability zones; prod 3")
    nat_gateways: NatMode = Field("single", description="prod `per_az` (an AZ outage must not cut every node's egress)")
    flow_log_retention_days: Retention = Field(30, description="CloudWatch retention of the VPC flow logs")

    @field_validator("cidr")
    @classmethod
    def _private_vpc(cls, cidr: str) -> str:
        try:
            net = ipaddress.IPv4Network(cidr, strict=True)
        except ValueError:
            raise Invalid(
                f"{cidr!r} is not an IPv4 network in CIDR form",
                "a private IPv4 CIDR such as 10.20.0.0/16 (host bits zero)",
            ) from None
        if not net.is_private or not 16 <= net.prefixlen <= 20:
            raise Invalid(f"{cidr} is not a private /16../20", "an RFC 1918 network with prefix length 16..20")
        return str(net)

    @model_validator(mode="after")
    def _prod(self, info: ValidationInfo) -> NetworkConfig:
        if _env(info) == "prod" and self.nat_gateways != "per_az":
            raise Invalid(
                "prod needs one NAT gateway per AZ (an AZ outage must not cut every node's egress)",
                "per_az in prod",
                at="natGateways",
            )
        if _env(info) == "prod" and self.az_count < 3:
            raise Invalid(f"prod needs 3 AZs, got {self.az_count}", "3 in prod", at="azCount")
        return self


class NodeGroupConfig(Section):
    """One managed node group (``cluster.nodeGroups[]``)."""

    name: Annotated[str, _label("a DNS label")] = Field(description="a DNS label")
    instance_types: tuple[str, ...] = Field(
        description="Graviton types of `config.NODE_INSTANCE_SHAPES`, all of ONE vCPU/memory shape (Cluster "
        "Autoscaler sizes scale-ups from one of them; one group per size)",
        json_schema_extra={"items": {"type": "string", **_choices(sorted(NODE_INSTANCE_TYPES))}},
    )
    min_size: Int = Field(2, ge=1, le=100)
    max_size: Int = Field(6, ge=1, le=100)
    desired_size: Int = Field(
        default_factory=lambda data: data["min_size"],
        ge=1,
        le=100,
        description="minSize ≤ desiredSize ≤ maxSize; default minSize",
    )
    disk_gib: Int = Field(50, ge=20, le=500, description="root volume (gp3, encrypted)")

    @field_validator("instance_types")
    @classmethod
    def _one_shape(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        allowed = ", ".join(sorted(NODE_INSTANCE_TYPES))
        if not types:
            raise Invalid("is empty", allowed)
        for t in types:
            if t not in NODE_INSTANCE_TYPES:
                raise Invalid(f"{t!r} is not allowed", allowed)
        if len({NODE_INSTANCE_SHAPES[t] for t in types}) > 1:
            listed = ", ".join(
                f"{t} ({NODE_INSTANCE_SHAPES[t][0]} vCPU/{NODE_INSTANCE_SHAPES[t][1]} GiB)" for t in types
            )
            raise Invalid(
                f"mixes instance sizes: {listed}",
                "types of one vCPU/memory size per node group (Cluster Autoscaler sizes scale-ups "
                "from one of them); declare one node group per size",
            )
        return types

    @model_validator(mode="after")
    def _bounds(self) -> NodeGroupConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise Invalid(
                f"{self.desired_size} is outside minSize..maxSize ({self.min_size}..{self.max_size})",
                "minSize <= desiredSize <= maxSize",
                at="desiredSize",
            )
        return self


def _cidr(value: str, allowed: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise Invalid(f"{value!r} is not a CIDR", allowed) from None


def _role_arns(roles: tuple[str, ...]) -> tuple[str, ...]:
    for r in roles:
        if not _ROLE_ARN.match(r):
            raise Invalid(f"{r!r} is not an IAM role ARN", "arn:aws:iam::<12 digits>:role/<name>")
    return roles


RoleArns = Annotated[tuple[str, ...], AfterValidator(_role_arns)]


class ClusterConfig(Section):
    """``cluster``: EKS, its API endpoint, who may reach it, and its node groups."""

    ENV_DEFAULTS: ClassVar = {"logRetentionDays": {"dev": 30, "prod": 365}}

    version: Annotated[str, BeforeValidator(str), _one_of(versions.SUPPORTED_EKS_VERSIONS)] = Field(
        versions.DEFAULT_EKS_VERSION,
        json_schema_extra=_choices(versions.SUPPORTED_EKS_VERSIONS),
        description="`versions.SUPPORTED_EKS_VERSIONS`: minors with a pinned add-on set",
    )
    public_access_cidrs: tuple[str, ...] = Field(
        (),
        description="CIDRs of the operators' and CI runners' egress, prefix ≥ 8 (never `0.0.0.0/0`); empty = "
        "private endpoint only; prod: must be empty (FSBP EKS.1)",
    )
    private_access_cidrs: tuple[str, ...] = Field(
        (),
        description="RFC 1918 IPv4 CIDRs of networks routed to the VPC (peering, Transit Gateway, VPN): 443 "
        "to the private endpoint",
    )
    admin_role_arns: RoleArns = Field((), description="≥ 1 IAM role ARN (access entries with cluster-admin)")
    view_role_arns: RoleArns = Field(
        (),
        description="IAM role ARNs with read-only access (`AmazonEKSViewPolicy`), "
        "e.g. the PR preview role; none also admin",
    )
    node_groups: tuple[NodeGroupConfig, ...] = Field(
        (NodeGroupConfig.model_validate({"name": "general", "instanceTypes": ["m7g.large"]}),),
        description="node group objects, names unique; prod: Σ minSize ≥ 3",
    )
    log_retention_days: Retention = Field(30, description="CloudWatch retention of the control-plane logs")

    @field_validator("public_access_cidrs")
    @classmethod
    def _public_endpoint(cls, cidrs: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if _env(info) == "prod" and cidrs:
            raise Invalid(
                "prod's API endpoint is private-only (FSBP EKS.1 fails whenever the public endpoint is "
                "on, whatever the CIDRs)",
                "an empty list in prod; let CI reach the private endpoint from a network listed in "
                "cluster.privateAccessCidrs (platform/README.md, 'Reaching the EKS API')",
            )
        for c in cidrs:
            if _cidr(c, "CIDRs of the operators' and CI runners' egress, e.g. 203.0.113.0/24").prefixlen < 8:
                raise Invalid(
                    f"{c} opens the API endpoint to (nearly) everyone",
                    "prefix length >= 8; leave the list empty for a private-only endpoint",
                )
        return cidrs

    @field_validator("private_access_cidrs")
    @classmethod
    def _routed_networks(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        allowed = "RFC 1918 IPv4 CIDRs of networks routed to the VPC (peering, Transit Gateway, VPN)"
        for c in cidrs:
            net = _cidr(c, allowed)
            if net.version != 4 or not net.is_private:
                raise Invalid(f"{c} is not a private IPv4 network", allowed)
        return cidrs

    @field_validator("admin_role_arns")
    @classmethod
    def _someone_is_admin(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        if not roles:
            raise Invalid(
                "is empty: nobody could reach the cluster (access entries replace the creator's implicit admin)",
                "at least one IAM role ARN",
            )
        return roles

    @field_validator("node_groups")
    @classmethod
    def _node_groups(cls, groups: tuple[NodeGroupConfig, ...], info: ValidationInfo) -> tuple[NodeGroupConfig, ...]:
        if not groups:
            raise Invalid("is empty or not a list", "a list of node group objects")
        if len({g.name for g in groups}) != len(groups):
            raise Invalid("node group names repeat", "unique names")
        if _env(info) == "prod" and sum(g.min_size for g in groups) < 3:
            raise Invalid("prod needs at least 3 nodes in total (one per AZ)", "sum of minSize >= 3 in prod")
        return groups

    @model_validator(mode="after")
    def _one_entry_per_principal(self) -> ClusterConfig:
        if set(self.view_role_arns) & set(self.admin_role_arns):
            raise Invalid(
                "names a role that is also an admin (one access entry per principal)",
                "roles not listed in cluster.adminRoleArns",
                at="viewRoleArns",
            )
        return self


class DatabasesConfig(Section):
    """``databases``: one RDS PostgreSQL instance per catalog service that owns data, all alike."""

    ENV_DEFAULTS: ClassVar = {
        "multiAz": {"dev": False, "prod": True},
        "deletionProtection": {"dev": False, "prod": True},
        "backupRetentionDays": {"dev": 7, "prod": 14},
    }

    instance_class: Annotated[str, _one_of(DB_INSTANCE_CLASSES)] = Field(
        "db.t4g.medium",
        json_schema_extra=_choices(sorted(DB_INSTANCE_CLASSES)),
        description="Graviton, Performance Insights capable",
    )
    allocated_gib: Int = Field(20, ge=20, le=16384)
    max_allocated_gib: Int = Field(
        default_factory=lambda data: data["allocated_gib"] * 5,
        ge=20,
        le=65536,
        description="≥ allocatedGib (storage autoscaling ceiling); default 5 x allocatedGib",
    )
    multi_az: Bool = Field(False, description="prod: `true`")
    deletion_protection: Bool = Field(False, description="prod: `true`")
    backup_retention_days: Int = Field(7, ge=7, le=35)

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> DatabasesConfig:
        if self.max_allocated_gib < self.allocated_gib:
            raise Invalid(
                f"{self.max_allocated_gib} < allocatedGib {self.allocated_gib}",
                ">= allocatedGib (storage autoscaling ceiling)",
                at="maxAllocatedGib",
            )
        if _env(info) == "prod" and not self.multi_az:
            raise Invalid("prod without multi-AZ loses the database with one AZ", "true in prod", at="multiAz")
        if _env(info) == "prod" and not self.deletion_protection:
            raise Invalid("prod databases must be deletion-protected", "true in prod", at="deletionProtection")
        return self


def _url_path(path: str) -> str:
    if not re.fullmatch(r"/[A-Za-z0-9/_.-]*", path):
        raise Invalid(f"{path!r} is not a URL path", "a path starting with '/'")
    return path


def _email(allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _EMAIL.match(value):
            raise Invalid(f"{value!r} is not an e-mail address", allowed)
        return value

    return AfterValidator(check)


class EdgeConfig(Section):
    """``edge``: the WAF's limits, Shield Advanced, the health alarm's address, edge log retention."""

    ENV_DEFAULTS: ClassVar = {
        "shieldAdvanced": {"dev": False, "prod": True},
        "logRetentionDays": {"dev": 30, "prod": 365},
    }

    rate_limit_per_5min: Int = Field(2000, ge=100, le=2_000_000_000, description="per-IP requests per 5 min")
    login_rate_limit_per_5min: Int = Field(
        100, ge=10, le=2_000_000_000, description="< rateLimitPer5Min (POST on loginPath)"
    )
    login_path: Annotated[str, AfterValidator(_url_path)] = Field("/api/v1/sessions", description="a URL path")
    shield_advanced: Bool = Field(
        False, description="prod: `true` (the account must hold a Shield Advanced subscription)"
    )
    alert_email: Annotated[str, _email("name@example.com or unset")] | None = Field(
        None, description="e-mail for the health alarm topic, or unset"
    )
    log_retention_days: Retention = Field(30, description="CloudWatch retention (WAF logs; ALB log expiry in days)")

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> EdgeConfig:
        if self.login_rate_limit_per_5min >= self.rate_limit_per_5min:
            raise Invalid(
                f"{self.login_rate_limit_per_5min} is not stricter than rateLimitPer5Min {self.rate_limit_per_5min}",
                "a limit below edge.rateLimitPer5Min",
                at="loginRateLimitPer5Min",
            )
        if _env(info) == "prod" and not self.shield_advanced:
            raise Invalid(
                "prod runs with Shield Advanced protections",
                "true in prod (the account must hold a Shield Advanced subscription)",
                at="shieldAdvanced",
            )
        return self


# --- the Kubernetes layer (every stack) ----------------------------------------------------------------------------

REGISTRY_HOST: Final = "<12-digit account>.dkr.ecr.<region>.amazonaws.com (the registry stack's `registry` output)"


def _registry_host(value: str) -> str:
    if not ECR_HOST.match(value):
        raise Invalid(f"{value!r} is not an ECR registry host", REGISTRY_HOST)
    return value


def _image_tag(tag: str) -> str:
    if not _TAG.match(tag) or tag == "latest":
        raise Invalid(f"{tag!r} is not a fixed image tag", "the tag CI pushed (e.g. the git SHA); never 'latest'")
    return tag


def _https(hook: str) -> str:
    if not hook.startswith("https://"):
        raise Invalid(
            f"{hook!r} is not an https URL", "an https:// webhook, or unset (alerts then stay in Alertmanager)"
        )
    return hook


class KubernetesConfig(Section):
    """``kubernetes``: the images a stack runs, alerting, the first administrator, log and metric retention."""

    ENV_DEFAULTS: ClassVar = {
        "imageTag": {"dev": DEFAULT_IMAGE_TAG, "prod": DEFAULT_IMAGE_TAG, "local": "local"},
        "logRetentionDays": {"dev": 7, "prod": 30},
        "elasticsearchNodes": {"dev": 1, "prod": 3},
        "elasticsearchStorageGib": {"dev": 10, "prod": 100},
        "prometheusRetentionDays": {"dev": 7, "prod": 15},
        "prometheusStorageGib": {"dev": 20, "prod": 100},
    }

    # EKS: the shared registry's host (shop_platform.images); kind loads images into its nodes instead.
    image_registry: Annotated[str, AfterValidator(_registry_host)] | None = Field(
        None,
        description="dev/prod: the shared registry host `<account>.dkr.ecr.<region>.amazonaws.com` (the "
        "`registry` stack's `registry` output), in the stack's region; refused on `local`",
    )
    # On EKS the deploy job pins the git commit and the digests, and the program refuses to run without them
    # (shop_platform.images.check_deployable).
    image_tag: Annotated[str, AfterValidator(_image_tag)] = Field(
        DEFAULT_IMAGE_TAG,
        description="dev/prod: the 40-hex git commit the images were built from (set by the "
        "deploy job; `preview`/`up` refuse without it); local: a fixed tag (never "
        "`latest`)",
    )
    image_digests: dict[str, str] = Field(
        default_factory=dict,
        description="`{service: sha256:<64 hex>}`; dev/prod: every catalog service (set by "
        "the deploy job; `preview`/`up` refuse without them)",
    )
    alert_webhook_url: Annotated[str, AfterValidator(_https)] | None = Field(
        None, description="`https://` URL Alertmanager posts to; unset: alerts stay in Alertmanager"
    )
    admin_email: Annotated[str, _email("the first administrator's login, e.g. ops@example.com")] = Field(
        DEFAULT_ADMIN_EMAIL,
        description="the first administrator the users service creates (password "
        "generated: `pulumi stack output adminPassword --show-secrets`)",
    )
    log_retention_days: Int = Field(7, ge=1, le=3650, description="ILM deletes `shop-*` indices after it")
    elasticsearch_nodes: Int = Field(1, ge=1, le=5, description="1, 3 or 5 (an odd quorum); prod ≥ 3")
    elasticsearch_storage_gib: Int = Field(10, ge=5, le=16384)
    prometheus_retention_days: Int = Field(7, ge=1, le=365)
    prometheus_storage_gib: Int = Field(20, ge=5, le=16384)

    @field_validator("image_digests")
    @classmethod
    def _catalog_digests(cls, digests: dict[str, str]) -> dict[str, str]:
        for name, digest in digests.items():
            if name not in catalog.by_name():
                raise Invalid("is not a catalog service", ", ".join(s.name for s in catalog.SERVICES), at=name)
            if not DIGEST.match(digest):
                raise Invalid(f"{digest!r} is not a digest", "sha256:<64 hex>", at=name)
        return digests

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> KubernetesConfig:
        if self.image_registry is not None and _env(info) == LOCAL_ENVIRONMENT:
            raise Invalid(
                "the local stack loads images into its kind nodes", "unset on the local stack", at="imageRegistry"
            )
        if self.elasticsearch_nodes not in (1, 3, 5) or (_env(info) == "prod" and self.elasticsearch_nodes < 3):
            raise Invalid(
                f"{self.elasticsearch_nodes} is not allowed",
                "1 (dev/local) or 3/5 (an odd quorum; prod needs >= 3)",
                at="elasticsearchNodes",
            )
        return self


def _region(region: object) -> str:
    if not isinstance(region, str) or not REGION.match(region):
        raise Invalid(f"{region!r} is not an AWS region", "e.g. eu-west-1 (set aws:region)")
    return region


def _domain(domain: str) -> str:
    domain = domain.lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise Invalid(
            f"{domain!r} is not a DNS domain name",
            "a registered domain such as shop.example.com (labels of a-z, 0-9, '-')",
        )
    return domain


AwsRegion = Annotated[str, BeforeValidator(_region)]


class Stack(Section):
    """A whole stack file: its name and AWS region come from the engine (``stack``, ``aws:region``), not from
    ``retail-platform:*`` keys."""

    _stack: str = PrivateAttr("")

    @model_validator(mode="after")
    def _named(self, info: ValidationInfo) -> Stack:
        self._stack = str((info.context or {}).get("stack", ""))
        return self

    @property
    def stack(self) -> str:
        return self._stack


class StackConfig(Stack):
    """An AWS stack (dev, prod): ``Pulumi.<stack>.yaml``."""

    region: AwsRegion = Field(alias="aws:region", description="an AWS region (`eu-west-1`)")
    environment: Environment
    owner: Annotated[str, _label("a tag-safe team name")] = Field(description="tag-safe team name (`[a-z0-9-]`)")
    domain: Annotated[str, AfterValidator(_domain)] = Field(
        description="a DNS domain (`shop.example.com`); the API is `api.<domain>`"
    )
    create_zone: Bool = Field(False, description="`true` (create the hosted zone) / `false` (look it up)")
    network: NetworkConfig
    cluster: ClusterConfig
    databases: DatabasesConfig
    edge: EdgeConfig
    kubernetes: KubernetesConfig

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def cluster_name(self) -> str:
        return f"shop-{self.stack}"

    @property
    def api_domain(self) -> str:
        return f"api.{self.domain}"


# --- the local (kind) stack ----------------------------------------------------------------------------------------


def _kind_version() -> str:
    """The minor of the pinned kind node image (``kindest/node:v1.33.1@sha256:…`` -> ``1.33``)."""
    return versions.KIND_NODE_IMAGE.split("@")[0].split(":v")[1].rsplit(".", 1)[0]


def _pod_subnet(subnet: str) -> str:
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError:
        raise Invalid(f"{subnet!r} is not an IPv4 network", "e.g. 10.244.0.0/16") from None
    if not net.is_private:
        raise Invalid(f"{subnet} is not private", "an RFC 1918 network")
    return str(net)


def _cluster_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", name):
        raise Invalid(f"{name!r} is not a cluster name", "lowercase letters, digits, '-'")
    return name


class KindConfig(Section):
    """``kind``: the local cluster (charts/kind/cluster.yaml must agree)."""

    cluster_name: Annotated[str, AfterValidator(_cluster_name)] = Field("shop", description="kind cluster name")
    pod_subnet: Annotated[str, AfterValidator(_pod_subnet)] = Field(
        "10.244.0.0/16", description="private IPv4 CIDR; must match `charts/kind/cluster.yaml`"
    )
    kube_version: Annotated[str, BeforeValidator(str), _one_of(versions.SUPPORTED_EKS_VERSIONS)] = Field(
        default_factory=_kind_version,
        json_schema_extra=_choices(versions.SUPPORTED_EKS_VERSIONS),
        description="the same minors as EKS (manifests are validated for it); default: `versions.KIND_NODE_IMAGE`'s",
    )
    profile: KindProfile = Field(
        "full", description="`full` (everything) or `light` (no log pipeline: fits an 8 GB laptop)"
    )


class LocalStackConfig(Stack):
    """The kind stack: no AWS keys at all."""

    environment: Literal["local"] = "local"
    owner: Annotated[str, _label("a team name")] = Field("local", description="tag-safe team name")
    kind: KindConfig
    kubernetes: KubernetesConfig


# --- the registry stack ------------------------------------------------------------------------------------------


class RegistryConfig(Section):
    """``registry``: who may pull (the dev and prod accounts) and how many images to keep."""

    pull_account_ids: tuple[str, ...] = Field(
        description="the 12-digit ids (quoted strings) of the accounts whose nodes pull: dev and prod"
    )
    keep_images: Int = Field(
        30,
        ge=10,
        le=1000,
        description="older images expire; every image a stack runs or may roll back to must be among the newest",
    )

    @field_validator("pull_account_ids", mode="before")
    @classmethod
    def _accounts(cls, accounts: object) -> tuple[str, ...]:
        if (
            not isinstance(accounts, list | tuple)
            or not accounts
            or not all(isinstance(a, str) and _ACCOUNT.match(a) for a in accounts)
        ):
            raise Invalid(
                f"{accounts!r} is not a list of account ids",
                "the 12-digit ids (quoted strings) of the accounts whose nodes pull: dev and prod",
            )
        return tuple(sorted(set(accounts)))


class RegistryStackConfig(Stack):
    """``Pulumi.registry.yaml``: the shared ECR repositories."""

    region: AwsRegion = Field(alias="aws:region", description="the region the app stacks run in")
    environment: Literal["registry"] = "registry"
    owner: Annotated[str, _label("a tag-safe team name")] = Field(description="tag-safe team name")
    registry: RegistryConfig


# --- validation and the one mapping from pydantic's errors to ConfigError --------------------------------------

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], raw: object, **context: object) -> M:
    """``model`` from a raw mapping, or the first problem as a ``ConfigError`` naming the key."""
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        raise config_error(model, exc.errors()[0]) from None


def config_error(model: type[BaseModel], error: ErrorDetails) -> ConfigError:
    """The one mapping from a pydantic error to the key, the problem and what is allowed."""
    loc = [str(part) for part in error["loc"]]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, Invalid):
        return ConfigError(_key([*loc, *([cause.at] if cause.at else [])]), cause.problem, cause.allowed)
    if error["type"] == "extra_forbidden":
        parent = schema_at(model, error["loc"][:-1])
        return ConfigError(
            _key(loc),
            "is not a known key (a typo would silently fall back to a default)",
            ", ".join((parent or {}).get("properties", {})),
        )
    node = schema_at(model, error["loc"]) or {}
    problem = "is missing" if error["type"] == "missing" else f"{error['input']!r} is not allowed"
    if node.get("type") == "integer" and error["type"] != "missing":
        problem = f"{error['input']!r} is out of range"
    return ConfigError(_key(loc), problem, allowed(node))


def _key(loc: list[str]) -> str:
    """``("cluster", "nodeGroups", "0", "minSize")`` -> ``cluster.nodeGroups[0].minSize``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if part.isdigit() else (f".{part}" if key else part)
    return key


@cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True)


def schema_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> dict[str, Any] | None:
    """The JSON schema node of the value at ``loc`` (aliases and list indexes), ``$ref`` and ``X | None``
    resolved; ``None`` when the location is not in the schema (a validator's own sub-key)."""
    root = _schema(model)

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:
            node = {**root["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
        options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
        if len(options) == 1:
            node = {**resolve(options[0]), **{k: v for k, v in node.items() if k != "anyOf"}}
        return node

    node = resolve(root)
    for part in loc:
        if isinstance(part, int):
            child = node.get("items")
        else:
            child = node.get("properties", {}).get(part)
            if child is None and isinstance(node.get("additionalProperties"), dict):
                child = node["additionalProperties"]
        if not isinstance(child, dict):
            return None
        node = resolve(child)
    return node


def allowed(node: Mapping[str, Any]) -> str:
    """What a key allows, from its JSON schema: the constraint the schema states, then the field's description."""
    if "enum" in node:
        rule = ", ".join(str(v) for v in node["enum"])
    elif "const" in node:
        rule = str(node["const"])
    elif node.get("type") == "integer" and "minimum" in node:
        rule = f"an integer {node['minimum']}..{node['maximum']}"
    elif node.get("type") == "boolean":
        rule = "true or false"
    elif node.get("type") == "array":
        item = node.get("items", {})
        rule = f"a list of {', '.join(item['enum'])}" if "enum" in item else "a list"
    elif node.get("type") == "object" and "properties" in node:
        rule = f"a mapping with keys {', '.join(node['properties'])}"
    else:
        rule = ""
    description = node.get("description", "")
    return "; ".join(part for part in (rule, description) if part) or "see platform/README.md"


# --- entry points ----------------------------------------------------------------------------------------------


def parse_stack_config(stack: str, raw: Mapping[str, Any], region: str | None) -> StackConfig:
    """Validate the raw ``retail-platform:*`` values (keys without the project prefix) of one AWS stack."""
    env = raw.get("environment", stack)
    data = {"environment": stack, **raw, "aws:region": region}
    return validate(StackConfig, data, stack=stack, environment=env)


def parse_local_config(stack: str, raw: Mapping[str, Any]) -> LocalStackConfig:
    """The kind stack: no AWS keys at all; ``kind`` names the cluster, its pod subnet and version."""
    return validate(LocalStackConfig, raw, stack=stack, environment=LOCAL_ENVIRONMENT)


def parse_registry_stack_config(stack: str, raw: Mapping[str, Any], region: str | None) -> RegistryStackConfig:
    """``Pulumi.registry.yaml``: who may pull (the dev and prod accounts) and how many images to keep."""
    return validate(RegistryStackConfig, {**raw, "aws:region": region}, stack=stack, environment=REGISTRY_ENVIRONMENT)


def parse_any_stack_config(
    stack: str, raw: Mapping[str, Any], region: str | None
) -> StackConfig | LocalStackConfig | RegistryStackConfig:
    """A ``local`` (kind) stack has no AWS keys, the ``registry`` stack holds only the shared image registry;
    every other stack is an AWS stack."""
    environment = raw.get("environment", stack)
    if environment == REGISTRY_ENVIRONMENT:
        return parse_registry_stack_config(stack, raw, region)
    if environment == LOCAL_ENVIRONMENT:
        return parse_local_config(stack, raw)
    return parse_stack_config(stack, raw, region)


def load_stack_config() -> StackConfig | LocalStackConfig | RegistryStackConfig:
    """Read this stack's config from Pulumi (once, in ``stacks/__main__.py``) and validate it."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env

    # Every key of this project, so a misspelt one is reported instead of ignored. The engine hands config to
    # the program in the runtime's config map (or PULUMI_CONFIG); pulumi.Config offers no way to list keys.
    prefix = f"{PROJECT}:"
    raw: dict[str, Any] = {
        k.removeprefix(prefix): v for k, v in {**get_config_env(), **CONFIG.get()}.items() if k.startswith(prefix)
    }
    return parse_any_stack_config(pulumi.get_stack(), raw, pulumi.Config("aws").get("region"))
