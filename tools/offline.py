"""Run a Pulumi program offline: Pulumi's own mocks plus a monitor that records every registration.

Used by the offline plan (``python -m tools.plan``) and by the tests, so both see exactly the same
graph. What the mocks cannot do, they refuse loudly: an invoke this module does not know raises instead of
returning ``{}`` (which would silently turn lookups into ``None``), and the program runs with
``preview=False`` so every ``apply`` executes.

The cloud-computed outputs returned here (endpoints, ARNs, DNS names) are placeholders shaped like AWS's,
under their camelCase wire names; they exist so the program's ``apply`` chains run, never as a claim about
real values.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
from pulumi.runtime import mocks, rpc, settings

ACCOUNT_ID: Final = "111122223333"
SECRET_PLACEHOLDER: Final = "[secret]"  # noqa: S105 - the redaction marker, not a password
_SECRET_SIG: Final = rpc._special_secret_sig  # the engine's wire marker for a secret value


class UnknownInvokeError(RuntimeError):
    """The program called a data source the offline mocks cannot answer honestly."""


def redact(value: Any) -> Any:
    """Replace every secret (wire-wrapped or marked) in a deserialized property tree by a placeholder."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == _SECRET_SIG:
            return SECRET_PLACEHOLDER
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class RecordedResource:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    provider: str | None
    deps: tuple[str, ...]
    inputs: dict[str, Any]
    # What the mocks answered (placeholders shaped like AWS's): used by tests to follow references.
    id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    # Resource options the engine would honour (protect blocks destroy; ignore_changes hides drift).
    protect: bool = False
    ignore_changes: tuple[str, ...] = ()
    # retain_on_delete: `pulumi destroy` removes the resource from the state but leaves it in the cloud.
    retain_on_delete: bool = False
    # customTimeouts the engine would pass to the provider ({"create": "30m"}; empty when unset).
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    # The parents named by alias specs (``Alias(parent=...)``): the engine matches the state's resource at the
    # URN the same name and type have under that parent, so moving a resource into a component keeps it.
    alias_parents: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "parent": self.parent,
            "custom": self.custom,
            "provider": self.provider,
            "deps": list(self.deps),
            "protect": self.protect,
            "ignore_changes": list(self.ignore_changes),
            "retain_on_delete": self.retain_on_delete,
            "inputs": self.inputs,
        }


@dataclass
class Recording:
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> RecordedResource:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {[r.name for r in found]}")
        return found[0]

    def by_id(self) -> dict[str, RecordedResource]:
        return {r.id: r for r in self.resources if r.id}

    def by_urn(self) -> dict[str, RecordedResource]:
        return {r.urn: r for r in self.resources}

    def named(self, name: str) -> RecordedResource:
        for r in self.resources:
            if r.name == name:
                return r
        raise KeyError(name)


class RecordingMonitor(mocks.MockMonitor):
    """A MockMonitor that keeps every registration (type, name, parent, provider, deps, redacted inputs)."""

    def __init__(self, m: mocks.Mocks) -> None:
        super().__init__(m)
        self.recording = Recording()

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # SDK untyped
        if request.type != "pulumi:pulumi:Stack":
            self.recording.resources.append(
                RecordedResource(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent or None,
                    custom=bool(request.custom),
                    provider=request.provider or None,
                    deps=tuple(sorted(request.dependencies)),  # the SDK collects them in a set
                    inputs=redact(rpc.deserialize_properties(request.object, keep_unknowns=True)),
                    id=response.id or None,
                    outputs=redact(dict(self.resources[response.urn].state)) if response.urn in self.resources else {},
                    protect=bool(request.protect),
                    ignore_changes=tuple(request.ignoreChanges),
                    retain_on_delete=bool(request.retainOnDelete),
                    custom_timeouts={
                        k: v for k in ("create", "update", "delete") if (v := getattr(request.customTimeouts, k, ""))
                    },
                    alias_parents=tuple(
                        a.spec.parentUrn for a in request.aliases if a.HasField("spec") and a.spec.parentUrn
                    ),
                )
            )
        return response


def _arn(service: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


class PlatformMocks(pulumi.runtime.Mocks):
    """Answers resource registrations with AWS-shaped outputs and a fixed set of invokes; refuses the rest."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.azs = [f"{region}{s}" for s in "abc"]

    @staticmethod
    def cluster_security_group_id(cluster_name: str) -> str:
        """The id the mocks give the security group EKS creates for a cluster (control plane + nodes)."""
        return f"sg-{cluster_name}-cluster"

    # -- resources ------------------------------------------------------------------------------------------
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        t, name, i = args.typ, args.name, dict(args.inputs)
        region = i.get("region") or self.region
        out: dict[str, Any] = dict(i)
        rid = f"{name}-id"
        if t.startswith("pulumi:providers:"):
            return rid, out
        out.setdefault("arn", _arn(t.split(":")[1].split("/")[0], region, f"{name}"))
        # Pulumi auto-names resources whose ``name`` is not given; mimic it so references resolve.
        out.setdefault("name", name)
        if t == "aws:eks/cluster:Cluster":
            cname = i.get("name", name)
            out["arn"] = _arn("eks", region, f"cluster/{cname}")
            out["endpoint"] = f"https://{cname}.gr7.{region}.eks.amazonaws.com"
            out["certificateAuthority"] = {"data": "TU9DSy1DQQ=="}
            out["identities"] = [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/MOCK{cname}"}]}]
            out["vpcConfig"] = {
                **(i.get("vpcConfig") or {}),
                "clusterSecurityGroupId": self.cluster_security_group_id(cname),
            }
            rid = cname
        elif t == "aws:rds/instance:Instance":
            ident = i.get("identifier", name)
            out["address"] = f"{ident}.abcdefghij.{region}.rds.amazonaws.com"
            out["endpoint"] = f"{out['address']}:{int(i.get('port', 5432))}"
            out["masterUserSecrets"] = [
                {
                    "secretArn": _arn("secretsmanager", region, f"secret:rds!db-{name}-AbCdEf"),
                    "kmsKeyId": i.get("masterUserSecretKmsKeyId"),
                    "secretStatus": "active",
                }
            ]
            out["resourceId"] = "db-" + hashlib.sha256(ident.encode()).hexdigest()[:26].upper()
        elif t == "aws:lb/loadBalancer:LoadBalancer":
            out["arn"] = _arn("elasticloadbalancing", region, f"loadbalancer/app/{name}/0123456789abcdef")
            out["dnsName"] = f"{name}-123456789.{region}.elb.amazonaws.com"
            out["zoneId"] = "Z32O12XQLNTSW2"
            out["arnSuffix"] = f"app/{name}/0123456789abcdef"
        elif t == "aws:lb/targetGroup:TargetGroup":
            out["arn"] = _arn("elasticloadbalancing", region, f"targetgroup/{name}/0123456789abcdef")
            out["arnSuffix"] = f"targetgroup/{name}/0123456789abcdef"
        elif t == "aws:acm/certificate:Certificate":
            out["arn"] = _arn("acm", region, f"certificate/{name}")
            out["domainValidationOptions"] = [
                {
                    "domainName": d,
                    "resourceRecordName": f"_abc123.{d}.",
                    "resourceRecordType": "CNAME",
                    "resourceRecordValue": f"_xyz789.{name}.acm-validations.aws.",
                }
                for d in [i.get("domainName"), *(i.get("subjectAlternativeNames") or [])]
                if d
            ]
        elif t == "aws:route53/zone:Zone":
            rid = f"Z{name.upper().replace('-', '')[:12]}"
            out["zoneId"] = rid
            out["arn"] = f"arn:aws:route53:::hostedzone/{rid}"
            out["nameServers"] = ["ns-1.awsdns-01.org", "ns-2.awsdns-02.com"]
        elif t == "aws:route53/healthCheck:HealthCheck":
            rid = f"hc-{name}"
            out["arn"] = f"arn:aws:route53:::healthcheck/{rid}"
        elif t == "aws:cloudfront/distribution:Distribution":
            out["domainName"] = f"d{zlib.crc32(name.encode()):08x}.cloudfront.net"  # stable across runs
            out["hostedZoneId"] = "Z2FDTNDATAQYW2"
            out["arn"] = f"arn:aws:cloudfront::{ACCOUNT_ID}:distribution/{rid}"
        elif t == "aws:s3/bucket:Bucket":
            bucket = i.get("bucket", f"{name}-bucket")
            out["bucket"] = bucket
            out["arn"] = f"arn:aws:s3:::{bucket}"
            out["bucketRegionalDomainName"] = f"{bucket}.s3.{region}.amazonaws.com"
            rid = bucket
        elif t == "aws:iam/role:Role":
            out["name"] = i.get("name", name)
            out["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:role/{out['name']}"
        elif t == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            host = str(i.get("url", "")).removeprefix("https://")
            out["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{host}"
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            out["arn"] = _arn("logs", region, f"log-group:{i.get('name', name)}")
        elif t == "aws:kms/key:Key":
            out["keyId"] = f"{name}-key-id"
            out["arn"] = _arn("kms", region, f"key/{name}-key-id")
        elif t == "aws:ecr/repository:Repository":
            out["repositoryUrl"] = f"{ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com/{i.get('name', name)}"
        elif t == "aws:ec2/launchTemplate:LaunchTemplate":
            out["latestVersion"] = 1
        elif t == "aws:sns/topic:Topic":
            out["arn"] = _arn("sns", region, name)
        elif t == "random:index/randomBytes:RandomBytes":
            # Deterministic placeholders derived from the name (never real key material): the program's
            # key derivation runs, and resources.json stays reproducible.
            seed = hashlib.sha256(name.encode()).digest()[: int(i.get("length", 32))]
            out.update(base64=base64.b64encode(seed).decode(), hex=seed.hex())
        elif t == "random:index/randomId:RandomId":
            seed = hashlib.sha256(name.encode()).digest()[: int(i.get("byteLength", 8))]
            out.update(hex=seed.hex(), b64Std=base64.b64encode(seed).decode(), dec=str(int.from_bytes(seed)))
        elif t == "random:index/randomPassword:RandomPassword":
            out["result"] = hashlib.sha256(name.encode()).hexdigest()[: int(i.get("length", 32))]
        return rid, out

    # -- invokes --------------------------------------------------------------------------------------------
    def _availability_zones(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """An account that opted in to a Local Zone gets it from ``state=available`` too: answer like that
        unless the program filters on ``opt-in-status = opt-in-not-required`` (EKS and RDS refuse them)."""
        zones = [(n, f"euw1-az{i}") for i, n in enumerate(self.azs, 1)]
        filters = {f.get("name"): tuple(f.get("values") or ()) for f in args.get("filters") or []}
        if filters.get("opt-in-status") != ("opt-in-not-required",):
            zones.insert(1, (f"{self.region}-lz-1a", "euw1-lz1-az1"))
        return {"names": [n for n, _ in zones], "zoneIds": [z for _, z in zones], "id": self.region}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        handlers: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            "aws:index/getAvailabilityZones:getAvailabilityZones": self._availability_zones,
            "aws:index/getCallerIdentity:getCallerIdentity": lambda a: {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/deployer",
                "userId": "AROAMOCK",
                "id": ACCOUNT_ID,
            },
            "aws:index/getPartition:getPartition": lambda a: {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "id": "aws",
            },
            "aws:elb/getServiceAccount:getServiceAccount": lambda a: {
                "arn": "arn:aws:iam::156460612806:root",
                "id": "156460612806",
            },
            "aws:route53/getZone:getZone": lambda a: {
                "zoneId": "ZLOOKEDUP123",
                "name": a.get("name"),
                "id": "ZLOOKEDUP123",
                "arn": "arn:aws:route53:::hostedzone/ZLOOKEDUP123",
                "nameServers": [],
            },
        }
        handler = handlers.get(args.token)
        if handler is None:
            raise UnknownInvokeError(
                f"offline mocks cannot answer invoke {args.token!r}; teach "
                "tools.offline.PlatformMocks.call or avoid the lookup"
            )
        return handler(dict(args.args)), []


def run_program(
    program: Callable[[], object], *, project: str, stack: str, config: Mapping[str, str], region: str
) -> Recording:
    """Run ``program`` under mocks (preview=False) and return every registration and the stack outputs.

    ``config`` maps full keys (``retail-platform:domain``, ``aws:region``) to their string values, exactly
    as the engine passes them. Mocks are process-global: call this once per program run.
    """
    m = PlatformMocks(region)
    monitor = RecordingMonitor(m)
    settings.set_root_resource(None)  # type: ignore[arg-type]  # a fresh Stack per run, not the last run's
    # The SDK schedules on the thread's current event loop (asyncio.get_event_loop(), as under the language
    # host); an asyncio.run() earlier in the process leaves none set, so each run gets a loop of its own.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(m, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config))

    async def collect(exported: Mapping[str, Any]) -> None:
        values: dict[str, Any] = {}
        for key, value in exported.items():
            out = pulumi.Output.from_input(value)
            resolved = await out.future(with_unknowns=True)
            values[key] = SECRET_PLACEHOLDER if await out.is_secret() else resolved
        monitor.recording.outputs = values

    def body() -> pulumi.Output[Any]:
        program()
        root = settings.get_root_resource()
        exported: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})
        return pulumi.Output.from_input(asyncio.ensure_future(collect(exported)))

    pulumi.runtime.test(body)()  # type: ignore[no-untyped-call]  # SDK untyped
    return monitor.recording
