"""The services' chart values as a pydantic model: ``charts/service/values.schema.json`` is generated from it.

``ServiceValues`` states every key the chart reads, with the same rules Helm enforces at render time (the
schema) and pydantic enforces here (so ``k8s.values.service_values`` output can be checked without Helm).
Regenerate the schema with ``python -m tools.docgen write``; a test fails when the committed copy drifts.
Rules JSON schema cannot express (minReplicas <= maxReplicas, database CIDRs when the rule is on) live in the
chart's ``_helpers.tpl``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

SERVICE_NAME: Final = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"
DNS_LABEL: Final = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
LABEL_KEY: Final = r"^([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE: Final = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
CPU: Final = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
MEMORY: Final = r"^[0-9]+(Ki|Mi|Gi)$"
IPV4_CIDR: Final = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$"
ENV_NAME: Final = r"^[A-Z][A-Z0-9_]*$"
# Settings that are secrets never travel as plain env values: the chart mounts them from secretName.
SECRET_ENV_NAME: Final = r"(PASSWORD|PRIVATE_KEY|SIGNING_KEYS|FINGERPRINT_KEY|DATABASE_URL|SECRET$|TOKEN)"  # noqa: S105


def _not_latest(tag: str) -> str:
    if tag == "latest":
        raise ValueError("a fixed tag; 'latest' is refused (CKV_K8S_14)")
    return tag


def _env_names(env: dict[str, str]) -> dict[str, str]:
    for name in env:
        if not re.match(ENV_NAME, name) or re.search(SECRET_ENV_NAME, name):
            raise ValueError(f"{name}: upper-case names; secret settings are refused here (mount them via secretName)")
    return env


def _labels(labels: dict[str, str]) -> dict[str, str]:
    if not labels:
        raise ValueError("at least one label")
    for key, value in labels.items():
        if not re.match(LABEL_KEY, key) or not re.match(LABEL_VALUE, value):
            raise ValueError(f"{key}={value} is not a Kubernetes label")
    return labels


def _no_world(cidrs: list[str]) -> list[str]:
    if "0.0.0.0/0" in cidrs:
        raise ValueError("the database subnets; never the whole internet")
    return cidrs


def _unique(items: list[str]) -> list[str]:
    if len(set(items)) != len(items):
        raise ValueError("each service once")
    return items


Name = Annotated[StrictStr, Field(pattern=DNS_LABEL)]
PodLabels = Annotated[
    dict[str, StrictStr],
    AfterValidator(_labels),
    Field(
        json_schema_extra={
            "minProperties": 1,
            "propertyNames": {"pattern": LABEL_KEY},
            "additionalProperties": {"type": "string", "pattern": LABEL_VALUE},
        }
    ),
]
Cidrs = list[Annotated[StrictStr, Field(pattern=IPV4_CIDR)]]


class Values(BaseModel):
    """An object of the chart's values: camelCase keys, nothing unknown (a typo never falls back to a default)."""

    # python-re: the role ARN pattern's Unicode \w{1,512} exceeds the Rust engine's compiled-size limit.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True, regex_engine="python-re")


class Image(Values):
    repository: StrictStr = Field(min_length=1, pattern=r"^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?$")
    tag: Annotated[StrictStr, AfterValidator(_not_latest)] = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        description="a fixed tag; 'latest' is refused (CKV_K8S_14)",
        json_schema_extra={"not": {"const": "latest"}},
    )
    digest: StrictStr = Field("", pattern=r"^(sha256:[a-f0-9]{64})?$")
    pull_policy: Literal["Always", "IfNotPresent"] = "Always"


class ServiceAccount(Values):
    role_arn: StrictStr = Field("", pattern=r"^(arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512})?$")


class Quantities(Values):
    cpu: StrictStr = Field(pattern=CPU)
    memory: StrictStr = Field(pattern=MEMORY)


class Resources(Values):
    requests: Quantities
    limits: Quantities


class Autoscaling(Values):
    min_replicas: StrictInt = Field(ge=1, le=100)
    max_replicas: StrictInt = Field(ge=1, le=100)
    target_cpu_utilization_percentage: StrictInt = Field(ge=10, le=95, alias="targetCPUUtilizationPercentage")


class PodDisruptionBudget(Values):
    max_unavailable: StrictInt = Field(ge=1)


class TopologySpread(Values):
    zone_when_unsatisfiable: Literal["ScheduleAnyway", "DoNotSchedule"] = "ScheduleAnyway"


class Probes(Values):
    startup_failure_threshold: StrictInt = Field(60, ge=1, le=300)
    liveness_period_seconds: StrictInt = Field(10, ge=1, le=60)
    readiness_period_seconds: StrictInt = Field(5, ge=1, le=60)


class Peer(Values):
    namespace: Name
    pod_labels: PodLabels


class ServicePort(Values):
    name: Name
    port: StrictInt = Field(ge=1024, le=65535)


class Database(Values):
    enabled: StrictBool
    port: StrictInt = Field(5432, ge=1, le=65535)
    cidrs: Annotated[Cidrs, AfterValidator(_no_world)] = Field(
        default_factory=list,
        description="the database subnets; never the whole internet",
        json_schema_extra={"not": {"contains": {"const": "0.0.0.0/0"}}},
    )
    namespace: StrictStr = Field("", pattern=r"^([a-z]([a-z0-9-]{0,61}[a-z0-9])?)?$")
    pod_labels: dict[str, StrictStr] = Field(default_factory=dict)


class AwsApis(Values):
    enabled: StrictBool
    cidrs: Cidrs = Field(default_factory=list)


class NetworkPolicy(Values):
    from_services: Annotated[list[Name], AfterValidator(_unique)] = Field(
        default_factory=list, json_schema_extra={"uniqueItems": True}
    )
    from_peers: list[Peer] = Field(default_factory=list)
    prometheus: Peer | None = None
    to_services: list[ServicePort] = Field(default_factory=list)
    dns: Peer | None = None
    database: Database | None = None
    aws_apis: AwsApis | None = None
    hbone_port: StrictInt = Field(
        0,
        ge=0,
        le=65535,
        description="The mesh's HBONE port (Istio ambient: 15008), "
        "admitted beside the port of every rule between pods; 0: no mesh.",
    )


class ServiceMonitor(Values):
    enabled: StrictBool = True
    interval: StrictStr = Field("30s", pattern=r"^[0-9]+(s|m)$")


class ServiceValues(Values):
    """Computed by shop_platform.k8s.values.service_values; every rule here has a test in
    tests/platform/k8s/test_chart.py."""

    name: StrictStr = Field(pattern=SERVICE_NAME, description="catalog service name (a DNS label)")
    port: StrictInt = Field(
        ge=1024, le=65535, description="unprivileged port: the container runs without NET_BIND_SERVICE"
    )
    image: Image
    env: Annotated[dict[str, StrictStr], AfterValidator(_env_names)] = Field(
        default_factory=dict,
        json_schema_extra={
            "propertyNames": {
                "pattern": ENV_NAME,
                "not": {"pattern": SECRET_ENV_NAME},
                "description": "upper-case names; secret settings are refused here (mount them via secretName)",
            }
        },
    )
    secrets_dir: StrictStr = Field("/var/run/secrets/shop", pattern=r"^/[a-z0-9/_-]+$")
    secret_name: StrictStr = Field("", pattern=r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)?$")
    service_account: ServiceAccount | None = None
    resources: Resources
    autoscaling: Autoscaling
    pod_disruption_budget: PodDisruptionBudget | None = None
    topology_spread: TopologySpread | None = None
    probes: Probes | None = None
    tmp_size_limit: StrictStr = Field("64Mi", pattern=MEMORY)
    termination_grace_period_seconds: StrictInt = Field(30, ge=10, le=300)
    network_policy: NetworkPolicy
    service_monitor: ServiceMonitor | None = None


def values_schema() -> dict[str, Any]:
    """The chart's ``values.schema.json``: draft-07 as Helm reads it, every ``$ref`` inlined, no titles or
    defaults (the chart's values.yaml holds the defaults)."""
    raw = ServiceValues.model_json_schema(by_alias=True)
    defs = raw.pop("$defs", {})

    def clean(node: Any, required: bool = True) -> Any:
        if isinstance(node, list):
            return [clean(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            node = {**defs[node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
        options = [o for o in node.get("anyOf", []) if o != {"type": "null"}]
        if not required and len(options) == 1 and len(node["anyOf"]) == 2:  # `X | None = None`: optional key
            return clean({**options[0], **{k: v for k, v in node.items() if k != "anyOf"}})
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "default"):
                continue
            if key == "properties":
                needed = set(node.get("required", []))
                out[key] = {k: clean(v, k in needed) for k, v in value.items()}
            elif key in ("not", "propertyNames"):
                out[key] = value
            else:
                out[key] = clean(value)
        return out

    body = clean(raw)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "retail-platform service chart values",
        "description": " ".join(str(body.pop("description")).split()),
        **body,
    }
