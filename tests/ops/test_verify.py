"""Verify against moto: an account built the way the program declares it passes every check; then one thing
is broken at a time and exactly that check fails, with a message naming what was found."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.ops.account import API, build_account
from tools.ops import verify

REGION = "eu-west-1"


class Health:
    status = 200


@pytest.fixture(scope="module")
def api_server() -> Iterator[tuple[str, type[Health]]]:
    """A local stand-in for the API behind the domain: GET /healthz answers Health.status."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = Health.status if self.path == "/healthz" else 404
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status":"ok"}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Health
    server.shutdown()


@pytest.fixture
def http_get(api_server: tuple[str, type[Health]]) -> Callable[[str], int]:
    """The real HTTP check, with the domain routed to the local server (there is no DNS for it here)."""
    base, health = api_server
    health.status = 200

    def get(url: str) -> int:
        assert url.startswith(f"https://{API}/")
        return verify.default_http_get(url.replace(f"https://{API}", base))

    return get


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def run(
    session: Any,
    outputs: dict[str, Any],
    http_get: Callable[[str], int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, dict[str, tuple[bool, str]], str]:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    code = verify.main(["--stack", "prod", "--outputs", str(path), *extra], session=session, http_get=http_get)
    out = capsys.readouterr().out
    checks = {}
    for line in out.splitlines()[:-1]:
        status, rest = line.split("  ", 1)
        name, _, detail = rest.strip().partition("  ")
        checks[name.strip()] = (status == "PASS", detail.strip())
    return code, checks, out


def failed(checks: dict[str, tuple[bool, str]]) -> dict[str, str]:
    return {name: detail for name, (ok, detail) in checks.items() if not ok}


def test_the_declared_shape_passes_every_check(
    session: Any, http_get: Callable[[str], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = build_account(session)
    code, checks, out = run(session, outputs, http_get, tmp_path, capsys)
    assert code == 0, out
    assert failed(checks) == {}
    assert {
        "health check",
        "failover records",
        "web ACL on ALB",
        "web ACL logging",
        "Shield",
        "EKS cluster",
        "ALB listeners",
        "API /healthz",
    } <= set(checks)
    assert {n for n in checks if n.startswith("database ")} == {f"database {s}" for s in outputs["databaseEndpoints"]}
    assert out.strip().endswith(f"all {len(checks)} checks passed")


def _delete_health_check(s: Any, o: dict[str, Any]) -> None:
    s.client("route53").delete_health_check(HealthCheckId=o["healthCheckId"])


def _health_check_on_wrong_path(s: Any, o: dict[str, Any]) -> None:
    s.client("route53").update_health_check(HealthCheckId=o["healthCheckId"], ResourcePath="/")


def _records(s: Any, o: dict[str, Any]) -> list[dict[str, Any]]:
    sets = s.client("route53").list_resource_record_sets(HostedZoneId=o["zoneId"])["ResourceRecordSets"]
    return [r for r in sets if r.get("Failover")]


def _primary_without_health_check(s: Any, o: dict[str, Any]) -> None:
    primary = next(r for r in _records(s, o) if r["Failover"] == "PRIMARY")
    r53 = s.client("route53")
    r53.change_resource_record_sets(
        HostedZoneId=o["zoneId"],
        ChangeBatch={
            "Changes": [
                {"Action": "DELETE", "ResourceRecordSet": primary},
                {"Action": "CREATE", "ResourceRecordSet": {k: v for k, v in primary.items() if k != "HealthCheckId"}},
            ]
        },
    )


def _no_secondary(s: Any, o: dict[str, Any]) -> None:
    secondary = next(r for r in _records(s, o) if r["Failover"] == "SECONDARY")
    s.client("route53").change_resource_record_sets(
        HostedZoneId=o["zoneId"], ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": secondary}]}
    )


def _alb_arn(s: Any, o: dict[str, Any]) -> str:
    tg = s.client("elbv2").describe_target_groups(TargetGroupArns=[o["targetGroupArn"]])["TargetGroups"][0]
    if not tg.get("LoadBalancerArns"):
        return str(s.client("elbv2").describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"])
    return str(tg["LoadBalancerArns"][0])


def _waf_detached(s: Any, o: dict[str, Any]) -> None:
    s.client("wafv2").disassociate_web_acl(ResourceArn=_alb_arn(s, o))


def _waf_logging_removed(s: Any, o: dict[str, Any]) -> None:
    s.client("wafv2").delete_logging_configuration(ResourceArn=o["webAclArn"])


def _waf_logs_carry_tokens(s: Any, o: dict[str, Any]) -> None:
    s.client("wafv2").put_logging_configuration(
        LoggingConfiguration={
            "ResourceArn": o["webAclArn"],
            "LogDestinationConfigs": ["arn:aws:logs:eu-west-1:1:log-group:aws-waf-logs-x"],
            "RedactedFields": [{"SingleHeader": {"Name": "cookie"}}],
        }
    )


def _no_shield_on_alb(s: Any, o: dict[str, Any]) -> None:
    shield = s.client("shield", region_name="us-east-1")
    prot = next(p for p in shield.list_protections()["Protections"] if p["ResourceArn"] == _alb_arn(s, o))
    shield.delete_protection(ProtectionId=prot["Id"])


def _db_stopped(s: Any, o: dict[str, Any]) -> None:
    s.client("rds").stop_db_instance(DBInstanceIdentifier="prod-orders")


def _db_public(s: Any, o: dict[str, Any]) -> None:
    s.client("rds").modify_db_instance(
        DBInstanceIdentifier="prod-orders", PubliclyAccessible=True, ApplyImmediately=True
    )


def _db_unencrypted(s: Any, o: dict[str, Any]) -> None:
    rds = s.client("rds")
    rds.create_db_instance(
        DBInstanceIdentifier="prod-orders-restored",
        Engine="postgres",
        DBInstanceClass="db.m7g.large",
        AllocatedStorage=50,
        MasterUsername="shop_admin",
        ManageMasterUserPassword=True,
        StorageEncrypted=False,
        MultiAZ=True,
        DeletionProtection=True,
    )
    o["databaseEndpoints"]["orders"] = rds.describe_db_instances(DBInstanceIdentifier="prod-orders-restored")[
        "DBInstances"
    ][0]["Endpoint"]["Address"]


def _db_single_az(s: Any, o: dict[str, Any]) -> None:
    s.client("rds").modify_db_instance(DBInstanceIdentifier="prod-orders", MultiAZ=False, ApplyImmediately=True)


def _http_served(s: Any, o: dict[str, Any]) -> None:
    elbv2 = s.client("elbv2")
    http = next(
        x for x in elbv2.describe_listeners(LoadBalancerArn=_alb_arn(s, o))["Listeners"] if x["Protocol"] == "HTTP"
    )
    elbv2.modify_listener(
        ListenerArn=http["ListenerArn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": o["targetGroupArn"]}]
    )


BREAKS: dict[str, tuple[Callable[[Any, dict[str, Any]], None], str, str]] = {
    "health check deleted": (_delete_health_check, "health check", "NoSuchHealthCheck"),
    "health check probes /": (_health_check_on_wrong_path, "health check", "path '/' (want /healthz)"),
    "primary without health check": (_primary_without_health_check, "failover records", "PRIMARY carries"),
    "no secondary": (_no_secondary, "failover records", "no SECONDARY failover record"),
    "web ACL detached": (_waf_detached, "web ACL on ALB", "no web ACL is associated with the ALB"),
    "WAF logging removed": (_waf_logging_removed, "web ACL logging", "no logging configuration"),
    "WAF logs carry tokens": (_waf_logs_carry_tokens, "web ACL logging", "['authorization'] header(s)"),
    "no Shield on ALB": (_no_shield_on_alb, "Shield", "no Shield Advanced protection for the ALB"),
    "database stopped": (_db_stopped, "database orders", "status stopped"),
    "database public": (_db_public, "database orders", "publicly accessible"),
    "database unencrypted": (_db_unencrypted, "database orders", "storage NOT encrypted"),
    "database single-AZ in prod": (_db_single_az, "database orders", "single-AZ"),
    "HTTP listener serves": (_http_served, "ALB listeners", "HTTP:80 serves traffic instead of redirecting"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_break_is_reported_and_fails_the_run(
    name: str, session: Any, http_get: Callable[[str], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    breaker, check, phrase = BREAKS[name]
    outputs = build_account(session)
    breaker(session, outputs)
    code, checks, out = run(session, outputs, http_get, tmp_path, capsys)
    assert code == 1, out
    assert list(failed(checks)) == [check], out
    assert phrase in failed(checks)[check], out
    assert "checks FAILED" in out


def test_eks_at_another_version_than_the_stack_pins(
    session: Any, http_get: Callable[[str], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = build_account(session, eks_version="1.32")
    code, checks, _ = run(session, outputs, http_get, tmp_path, capsys)
    assert code == 1
    pinned = verify.expectations_from_stack("prod").eks_version
    assert failed(checks) == {"EKS cluster": f"shop-prod: version 1.32, the stack pins {pinned}"}


def test_api_not_answering_healthz(
    session: Any,
    http_get: Callable[[str], int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    api_server: tuple[str, type[Health]],
) -> None:
    outputs = build_account(session)
    api_server[1].status = 503
    code, checks, _ = run(session, outputs, http_get, tmp_path, capsys)
    assert code == 1
    assert failed(checks) == {"API /healthz": f"GET https://{API}/healthz -> 503"}


def test_shield_not_required_when_the_stack_does_not_want_it(
    session: Any, http_get: Callable[[str], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = build_account(session, shield=False)
    code, checks, _ = run(session, outputs, http_get, tmp_path, capsys)
    assert failed(checks) == {"Shield": "no Shield Advanced protection for the ALB and the hosted zone"}
    code, checks, _ = run(session, outputs, http_get, tmp_path, capsys, "--no-shield")
    assert code == 0
    assert checks["Shield"] == (True, "not wanted by this stack (edge.shieldAdvanced false)")


def test_missing_outputs_fail_clearly(
    session: Any, http_get: Callable[[str], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, out = run(session, {"apiUrl": "https://x"}, http_get, tmp_path, capsys)
    assert code == 1
    assert "missing ['clusterName'" in out


@pytest.mark.parametrize(
    ("argv", "content", "message"),
    [
        (["--stack", "prod"], None, "the following arguments are required: --outputs"),
        (["--stack", "prod", "--outputs", "{path}"], "not json", "is not JSON"),
        (["--stack", "prod", "--outputs", "{path}"], "[1, 2]", "must hold a JSON object"),
        (["--stack", "prod", "--outputs", "/nonexistent/outputs.json"], None, "cannot read"),
        (["--stack", "nosuch", "--outputs", "{path}"], "{}", "--stack nosuch: config retail-platform:stack"),
        (["--stack", "prod", "--outputs", "{path}", "--shield", "--no-shield"], "{}", "not allowed with argument"),
    ],
)
def test_bad_flags_are_clear_argparse_errors(
    argv: list[str], content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outputs.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        verify.main([a.replace("{path}", str(path)) for a in argv], session=object())
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_default_http_get_does_not_follow_redirects(api_server: tuple[str, type[Health]]) -> None:
    """A redirect (e.g. to a login or maintenance page) is not a healthy answer."""
    base, health = api_server
    health.status = 302
    assert verify.default_http_get(f"{base}/healthz") == 302
    health.status = 200
    assert verify.default_http_get(f"{base}/healthz") == 200
    with urllib.request.urlopen(f"{base}/healthz") as r:  # noqa: S310 - local test server
        assert r.status == 200
