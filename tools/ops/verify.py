"""After ``pulumi up``: check the live account against the stack's outputs and config.

    pulumi stack output --json --stack prod > outputs.json
    .venv/bin/python -m tools.ops.verify --stack prod --outputs outputs.json

Checks (each PASS or FAIL with what was found; exit 1 if any fails):
- the Route 53 health check exists, probes HTTPS ``/healthz``, and every checker region reports it healthy;
- ``api.<domain>`` has PRIMARY (carrying that health check) and SECONDARY failover records;
- the web ACL from the outputs is the one associated with the ALB (found through the target group), and
  it logs, with the ``authorization`` and ``cookie`` headers redacted;
- Shield Advanced protects the ALB and the zone when the stack wants it (``edge.shieldAdvanced``);
- every database endpoint is an RDS instance that is available, encrypted and not publicly accessible
  (and multi-AZ / deletion-protected when the stack config says so);
- the EKS cluster is ACTIVE at the version the stack config pins;
- the ALB's listeners are HTTPS, or HTTP whose only action is a redirect to HTTPS;
- the API answers ``GET /healthz`` with 200 through the domain.
The expectations come from ``Pulumi.<stack>.yaml`` (validated by ``shop_platform.config``) and the outputs;
``--eks-version`` and ``--shield/--no-shield`` override them.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

HttpGet = Callable[[str], int]
REQUIRED_OUTPUTS: Final = (
    "apiUrl",
    "clusterName",
    "databaseEndpoints",
    "webAclArn",
    "healthCheckId",
    "targetGroupArn",
    "zoneId",
)
# Headers carrying credentials that WAF logs must redact (as the program configures them).
REDACTED_HEADERS: Final = ("authorization", "cookie")
# Route 53 health checks and their status are global; their API lives in us-east-1.
GLOBAL_REGION: Final = "us-east-1"


@dataclass(frozen=True, slots=True)
class Expectations:
    eks_version: str
    shield: bool
    multi_az: bool = False
    deletion_protection: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def render(self) -> str:
        width = max((len(c.name) for c in self.checks), default=10)
        lines = [f"{'PASS' if c.ok else 'FAIL'}  {c.name.ljust(width)}  {c.detail}" for c in self.checks]
        verdict = (
            f"{len(self.failed)} of {len(self.checks)} checks FAILED"
            if self.failed
            else f"all {len(self.checks)} checks passed"
        )
        return "\n".join([*lines, verdict])


def default_http_get(url: str) -> int:
    """Status code of a GET (no redirects followed silently: a redirect is not a healthy answer)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, method="GET"), timeout=10) as response:  # noqa: S310 - https URL from outputs
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _err(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        e = exc.response.get("Error", {})
        return f"{e.get('Code', 'error')}: {e.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].rstrip(".")


class Verifier:
    """Runs every check; each catches its own AWS errors so one missing resource never hides the others."""

    def __init__(
        self,
        session: Any,
        region: str,
        outputs: Mapping[str, Any],
        expect: Expectations,
        http_get: HttpGet = default_http_get,
    ) -> None:
        self.session, self.region, self.outputs, self.expect, self.http_get = session, region, outputs, expect, http_get
        self.report = VerifyReport()
        self._alb_arn: str | None = None

    def client(self, service: str, region: str | None = None) -> Any:
        return self.session.client(service, region_name=region or self.region)

    def guarded(self, name: str, check: Callable[[], tuple[bool, str]]) -> None:
        try:
            ok, detail = check()
        except (ClientError, BotoCoreError, KeyError, IndexError, OSError) as exc:
            ok, detail = False, _err(exc)
        self.report.add(name, ok, detail)

    def run(self) -> VerifyReport:
        missing = [k for k in REQUIRED_OUTPUTS if not self.outputs.get(k)]
        if missing:
            self.report.add("stack outputs", False, f"missing {missing}: was this `pulumi stack output --json`?")
            return self.report
        self.guarded("health check", self.health_check)
        self.guarded("failover records", self.failover_records)
        self.guarded("web ACL on ALB", self.web_acl)
        self.guarded("web ACL logging", self.web_acl_logging)
        self.guarded("Shield", self.shield)
        for service, address in sorted(dict(self.outputs["databaseEndpoints"]).items()):
            self.guarded(f"database {service}", self._database_check(str(address)))
        self.guarded("EKS cluster", self.cluster)
        self.guarded("ALB listeners", self.listeners)
        self.guarded("API /healthz", self.api_health)
        return self.report

    def _database_check(self, address: str) -> Callable[[], tuple[bool, str]]:
        return lambda: self.database(address)

    # -- checks -------------------------------------------------------------------------------------------
    def health_check(self) -> tuple[bool, str]:
        route53 = self.client("route53", GLOBAL_REGION)
        hc_id = str(self.outputs["healthCheckId"])
        cfg = route53.get_health_check(HealthCheckId=hc_id)["HealthCheck"]["HealthCheckConfig"]
        problems = []
        if cfg.get("Type") not in ("HTTPS", "HTTPS_STR_MATCH"):
            problems.append(f"type {cfg.get('Type')} (want HTTPS)")
        if cfg.get("ResourcePath") != "/healthz":
            problems.append(f"path {cfg.get('ResourcePath')!r} (want /healthz)")
        observations = route53.get_health_check_status(HealthCheckId=hc_id).get("HealthCheckObservations", [])
        unhealthy = [
            o.get("Region", "?")
            for o in observations
            if not str(o.get("StatusReport", {}).get("Status", "")).startswith("Success")
        ]
        if not observations:
            problems.append("no checker has reported yet")
        if unhealthy:
            problems.append(f"unhealthy from {unhealthy}")
        return not problems, "; ".join(
            problems
        ) or f"{hc_id} HTTPS {cfg.get('FullyQualifiedDomainName')}/healthz healthy from {len(observations)} checker(s)"

    def failover_records(self) -> tuple[bool, str]:
        route53 = self.client("route53", GLOBAL_REGION)
        name = _host(str(self.outputs["apiUrl"])) + "."
        hc_id = str(self.outputs["healthCheckId"])
        records = route53.list_resource_record_sets(
            HostedZoneId=str(self.outputs["zoneId"]), StartRecordName=name, StartRecordType="A"
        )["ResourceRecordSets"]
        mine = [r for r in records if r["Name"].rstrip(".") == name.rstrip(".") and r.get("Failover")]
        primary = [r for r in mine if r["Failover"] == "PRIMARY"]
        secondary = [r for r in mine if r["Failover"] == "SECONDARY"]
        problems = []
        if not primary:
            problems.append(f"no PRIMARY failover record for {name}")
        elif any(r.get("HealthCheckId") != hc_id for r in primary):
            problems.append(f"PRIMARY carries health check {primary[0].get('HealthCheckId')!r}, not {hc_id}")
        if not secondary:
            problems.append(f"no SECONDARY failover record for {name}")
        return not problems, "; ".join(problems) or f"{name} PRIMARY (health check {hc_id}) + SECONDARY"

    def alb_arn(self) -> str:
        if self._alb_arn is None:
            groups = self.client("elbv2").describe_target_groups(TargetGroupArns=[str(self.outputs["targetGroupArn"])])[
                "TargetGroups"
            ]
            arns = groups[0].get("LoadBalancerArns", []) if groups else []
            if not arns:
                raise KeyError(f"target group {self.outputs['targetGroupArn']} is attached to no load balancer")
            self._alb_arn = str(arns[0])
        return self._alb_arn

    def web_acl(self) -> tuple[bool, str]:
        found = self.client("wafv2").get_web_acl_for_resource(ResourceArn=self.alb_arn()).get("WebACL")
        if not found:
            return False, "no web ACL is associated with the ALB"
        if found.get("ARN") != self.outputs["webAclArn"]:
            return False, f"the ALB has web ACL {found.get('ARN')}, not {self.outputs['webAclArn']}"
        return True, f"{found.get('Name')} on the ALB"

    def web_acl_logging(self) -> tuple[bool, str]:
        try:
            cfg = self.client("wafv2").get_logging_configuration(ResourceArn=str(self.outputs["webAclArn"]))[
                "LoggingConfiguration"
            ]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "WAFNonexistentItemException":
                return False, "the web ACL has no logging configuration"
            raise
        destinations = cfg.get("LogDestinationConfigs", [])
        redacted = {str(f.get("SingleHeader", {}).get("Name", "")).lower() for f in cfg.get("RedactedFields", [])}
        missing = [h for h in REDACTED_HEADERS if h not in redacted]
        if not destinations:
            return False, "logging has no destination"
        if missing:
            return False, f"logs would carry the {missing} header(s): redact them"
        return True, f"to {destinations[0]}, {' and '.join(REDACTED_HEADERS)} redacted"

    def shield(self) -> tuple[bool, str]:
        if not self.expect.shield:
            return True, "not wanted by this stack (edge.shieldAdvanced false)"
        shield = self.client("shield", GLOBAL_REGION)
        protected: set[str] = set()
        kwargs: dict[str, Any] = {}
        while True:  # list_protections pages with NextToken
            page = shield.list_protections(**kwargs)
            protected |= {p["ResourceArn"] for p in page.get("Protections", [])}
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        wanted = {"ALB": self.alb_arn(), "hosted zone": f"arn:aws:route53:::hostedzone/{self.outputs['zoneId']}"}
        missing = [what for what, arn in wanted.items() if arn not in protected]
        if missing:
            return False, f"no Shield Advanced protection for the {' and the '.join(missing)}"
        return True, "ALB and hosted zone protected"

    def database(self, address: str) -> tuple[bool, str]:
        rds = self.client("rds")
        found = [
            db
            for page in rds.get_paginator("describe_db_instances").paginate()
            for db in page["DBInstances"]
            if db.get("Endpoint", {}).get("Address") == address
        ]
        if not found:
            return False, f"no RDS instance has endpoint {address}"
        db = found[0]
        problems = []
        if db.get("DBInstanceStatus") != "available":
            problems.append(f"status {db.get('DBInstanceStatus')}")
        if not db.get("StorageEncrypted"):
            problems.append("storage NOT encrypted")
        if db.get("PubliclyAccessible"):
            problems.append("publicly accessible")
        if self.expect.multi_az and not db.get("MultiAZ"):
            problems.append("single-AZ (the stack wants multi-AZ)")
        if self.expect.deletion_protection and not db.get("DeletionProtection"):
            problems.append("no deletion protection (the stack wants it)")
        ident = db["DBInstanceIdentifier"]
        return not problems, f"{ident}: " + ("; ".join(problems) or "available, encrypted, private")

    def cluster(self) -> tuple[bool, str]:
        c = self.client("eks").describe_cluster(name=str(self.outputs["clusterName"]))["cluster"]
        problems = []
        if c.get("status") != "ACTIVE":
            problems.append(f"status {c.get('status')}")
        if str(c.get("version")) != self.expect.eks_version:
            problems.append(f"version {c.get('version')}, the stack pins {self.expect.eks_version}")
        return not problems, f"{c['name']}: " + ("; ".join(problems) or f"ACTIVE at {c.get('version')}")

    def listeners(self) -> tuple[bool, str]:
        found = self.client("elbv2").describe_listeners(LoadBalancerArn=self.alb_arn())["Listeners"]
        problems, seen = [], []
        for listener in found:
            proto, port = listener.get("Protocol"), listener.get("Port")
            seen.append(f"{proto}:{port}")
            if proto == "HTTPS":
                continue
            actions = listener.get("DefaultActions", [])
            if (
                proto == "HTTP"
                and actions
                and all(
                    a.get("Type") == "redirect" and a.get("RedirectConfig", {}).get("Protocol") == "HTTPS"
                    for a in actions
                )
            ):
                continue
            problems.append(f"{proto}:{port} serves traffic instead of redirecting to HTTPS")
        if not any(listener.get("Protocol") == "HTTPS" for listener in found):
            problems.append("no HTTPS listener")
        return not problems, "; ".join(problems) or f"{', '.join(seen)} (HTTP only redirects)"

    def api_health(self) -> tuple[bool, str]:
        url = str(self.outputs["apiUrl"]).rstrip("/") + "/healthz"
        status = self.http_get(url)
        return status == 200, f"GET {url} -> {status}"


def expectations_from_stack(stack: str, root: Path | None = None) -> Expectations:
    """What the stack's config asks for (EKS version, Shield, multi-AZ, deletion protection)."""
    from shop_platform.config import PROJECT, parse_stack_config

    from tools.plan import REPO_ROOT, stack_config

    cfg = stack_config(stack, root or REPO_ROOT)
    raw = {k.removeprefix(f"{PROJECT}:"): v for k, v in cfg.items() if k.startswith(f"{PROJECT}:")}
    parsed = parse_stack_config(stack, raw, cfg.get("aws:region"))
    return Expectations(
        eks_version=parsed.cluster.version,
        shield=parsed.edge.shield_advanced,
        multi_az=parsed.databases.multi_az,
        deletion_protection=parsed.databases.deletion_protection,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ops.verify", description="Check the live AWS account against a stack's outputs."
    )
    parser.add_argument(
        "--outputs", required=True, type=Path, help="JSON from `pulumi stack output --json` (use - for stdin)"
    )
    parser.add_argument("--stack", required=True, help="stack name: expectations come from Pulumi.<stack>.yaml")
    parser.add_argument("--region", help="AWS region (default: aws:region from the stack file)")
    parser.add_argument("--eks-version", help="override the EKS version the stack file pins")
    shield = parser.add_mutually_exclusive_group()
    shield.add_argument(
        "--shield", dest="shield", action="store_true", default=None, help="require Shield Advanced protections"
    )
    shield.add_argument("--no-shield", dest="shield", action="store_false", help="do not require them")
    parser.add_argument("--profile", help="AWS profile to use")
    return parser


def load_outputs(parser: argparse.ArgumentParser, path: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        parser.error(f"--outputs: cannot read {path}: {exc.strerror}")
    try:
        data = json.loads(text)
    except ValueError as exc:
        parser.error(f"--outputs: {path} is not JSON ({exc}); write it with `pulumi stack output --json`")
    if not isinstance(data, dict):
        parser.error(f"--outputs: {path} must hold a JSON object of stack outputs")
    return data


def main(
    argv: Sequence[str] | None = None,
    session: Any = None,
    http_get: HttpGet = default_http_get,
    root: Path | None = None,
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    outputs = load_outputs(parser, args.outputs)
    from shop_platform.config import ConfigError

    from tools.plan import REPO_ROOT, stack_config

    try:
        expect = expectations_from_stack(args.stack, root)
        region = args.region or stack_config(args.stack, root or REPO_ROOT)["aws:region"]
    except ConfigError as exc:
        parser.error(f"--stack {args.stack}: {exc}")
    if args.eks_version:
        expect = Expectations(args.eks_version, expect.shield, expect.multi_az, expect.deletion_protection)
    if args.shield is not None:
        expect = Expectations(expect.eks_version, args.shield, expect.multi_az, expect.deletion_protection)
    if session is None:
        import boto3

        session = boto3.Session(profile_name=args.profile, region_name=region)
    report = Verifier(session, region, outputs, expect, http_get).run()
    print(report.render())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
