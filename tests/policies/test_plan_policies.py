"""The pack over the whole program: every stack's offline plan passes with zero mandatory violations, and a
deliberately broken graph or stack config fails with messages that name the resource and the fix.

The breakages are ones stack-config validation cannot catch (it accepts the config, or the change is in code):
policies are the second line, for what reviewers and validators miss."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from retail_policies.offline import main as offline_main
from retail_policies.offline import run_policies, write_report

from tests.policies.conftest import STACKS, graph, planned
from tools.plan import run_plan, stack_config
from tools.plan import write as write_plan

Graph = list[dict[str, Any]]


def _of(g: Graph, type_: str) -> list[dict[str, Any]]:
    return [r for r in g if r["type"] == type_]


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_with_zero_mandatory_violations(stack: str) -> None:
    """What the repository declares must pass its own pack, or every preview would be blocked."""
    report = run_policies(planned(stack).recording.resources)
    assert report.mandatory == [], report.render()
    assert report.not_run == [], report.render()
    assert report.passed
    assert report.resources == len(planned(stack).recording.resources)


def test_the_rules_actually_see_the_program() -> None:
    """Guard against vacuous passes: the resources the rules target exist in the prod graph (the ECR
    repositories in the shared registry stack's)."""
    types = {r["type"] for stack in ("prod", "registry") for r in graph(stack)}
    for t in (
        "aws:rds/instance:Instance",
        "aws:eks/cluster:Cluster",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/listener:Listener",
        "aws:wafv2/webAcl:WebAcl",
        "aws:wafv2/webAclAssociation:WebAclAssociation",
        "aws:shield/protection:Protection",
        "aws:route53/record:Record",
        "aws:s3/bucket:Bucket",
        "aws:kms/key:Key",
        "aws:ecr/repository:Repository",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:rds/parameterGroup:ParameterGroup",
        "aws:eks/nodeGroup:NodeGroup",
    ):
        assert t in types, t


# --- one breakage at a time over the recorded prod graph -----------------------------------------------------
def _db_multi_az_off(g: Graph) -> None:
    _of(g, "aws:rds/instance:Instance")[0]["inputs"]["multiAz"] = False


def _no_waf_association(g: Graph) -> None:
    g[:] = [r for r in g if r["type"] != "aws:wafv2/webAclAssociation:WebAclAssociation"]


def _database_open_to_world(g: Graph) -> None:
    rule = next(
        r
        for r in _of(g, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["inputs"].get("fromPort") == 5432 and r["inputs"].get("referencedSecurityGroupId")
    )
    rule["inputs"].pop("referencedSecurityGroupId")
    rule["inputs"]["cidrIpv4"] = "0.0.0.0/0"


def _no_shield(g: Graph) -> None:
    g[:] = [r for r in g if not r["type"].startswith("aws:shield/")]


def _primary_without_health_check(g: Graph) -> None:
    primary = next(
        r
        for r in _of(g, "aws:route53/record:Record")
        if r["inputs"].get("failoverRoutingPolicies", [{}])[0].get("type") == "PRIMARY"
    )
    primary["inputs"].pop("healthCheckId")
    health_urns = {r["urn"] for r in _of(g, "aws:route53/healthCheck:HealthCheck")}
    primary["deps"] = [d for d in primary["deps"] if d not in health_urns]


def _eks_open_endpoint(g: Graph) -> None:
    vpc = _of(g, "aws:eks/cluster:Cluster")[0]["inputs"]["vpcConfig"]
    vpc.update(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/0"])


def _http_listener_forwards(g: Graph) -> None:
    http = next(r for r in _of(g, "aws:lb/listener:Listener") if r["inputs"]["protocol"] == "HTTP")
    http["inputs"]["defaultActions"] = [{"type": "forward", "targetGroupArn": "arn:tg"}]


def _key_without_rotation(g: Graph) -> None:
    _of(g, "aws:kms/key:Key")[0]["inputs"]["enableKeyRotation"] = False


def _mutable_registry(g: Graph) -> None:
    _of(g, "aws:ecr/repository:Repository")[0]["inputs"]["imageTagMutability"] = "MUTABLE"


def _tls_not_forced(g: Graph) -> None:
    group = _of(g, "aws:rds/parameterGroup:ParameterGroup")[0]
    group["inputs"]["parameters"] = [p for p in group["inputs"]["parameters"] if p["name"] != "rds.force_ssl"]


def _untagged_bucket(g: Graph) -> None:
    _of(g, "aws:s3/bucket:Bucket")[0]["inputs"].pop("tags")


def _waf_rules(g: Graph) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _of(g, "aws:wafv2/webAcl:WebAcl")[0]["inputs"]["rules"]
    return rules


def _common_rules_in_count_mode(g: Graph) -> None:
    rule = next(r for r in _waf_rules(g) if r["name"] == "AWSManagedRulesCommonRuleSet")
    rule["overrideAction"] = {"count": {}}


def _rate_rules_only_count(g: Graph) -> None:
    for rule in _waf_rules(g):
        if "rateBasedStatement" in rule["statement"]:
            rule["action"] = {"count": {}}


def _no_waf_logging(g: Graph) -> None:
    g[:] = [r for r in g if r["type"] != "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"]


def _bucket_without_public_access_block(g: Graph) -> None:
    block = _of(g, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")[0]
    g.remove(block)


def _eks_secrets_plaintext(g: Graph) -> None:
    _of(g, "aws:eks/cluster:Cluster")[0]["inputs"].pop("encryptionConfig")


BREAKAGES: dict[str, tuple[Callable[[Graph], None], set[str], str]] = {
    "db-single-az": (_db_multi_az_off, {"rds-prod-multi-az"}, "databases.multiAz: true"),
    "no-waf-on-alb": (_no_waf_association, {"alb-waf-association"}, "WebAclAssociation"),
    "db-open-to-world": (_database_open_to_world, {"sg-no-world-ingress"}, "tcp 5432 to 0.0.0.0/0"),
    "no-shield": (_no_shield, {"shield-prod-edge"}, "edge.shieldAdvanced: true"),
    "primary-unchecked": (
        _primary_without_health_check,
        {"route53-failover-primary-health-checked"},
        "health_check_id",
    ),
    "eks-world-endpoint": (_eks_open_endpoint, {"eks-endpoint-not-public"}, "endpoint_public_access=False"),
    "http-served": (_http_listener_forwards, {"alb-http-redirects-to-https"}, "redirect"),
    "key-not-rotating": (_key_without_rotation, {"kms-key-rotation"}, "enable_key_rotation=True"),
    "mutable-tags": (_mutable_registry, {"ecr-immutable-tags"}, "IMMUTABLE"),
    "tls-optional": (
        _tls_not_forced,
        {"rds-parameter-group-force-ssl", "rds-instance-uses-ssl-parameter-group"},
        "rds.force_ssl",
    ),
    "untagged": (_untagged_bucket, {"required-tags"}, "tags"),
    "waf-count-mode": (_common_rules_in_count_mode, {"waf-managed-rule-groups"}, "count mode"),
    "waf-rate-count-only": (_rate_rules_only_count, {"waf-rate-based-rule"}, "rateBasedStatement"),
    "waf-no-logging": (_no_waf_logging, {"waf-logging"}, "WebAclLoggingConfiguration"),
    "bucket-public-access-open": (
        _bucket_without_public_access_block,
        {"s3-bucket-public-access-blocked"},
        "BucketPublicAccessBlock",
    ),
    "eks-secrets-plaintext": (_eks_secrets_plaintext, {"eks-secrets-encryption"}, "encryption_config"),
}


# Breakages of a resource the prod stack does not declare: the graph of the stack that does.
GRAPH_OF: dict[str, str] = {"mutable-tags": "registry"}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_each_breakage_of_the_prod_graph_fails_with_an_actionable_message(name: str) -> None:
    """Exactly the rules about the broken property fire (no noise from others), every message says what to
    change, and the report fails."""
    mutate, policies, phrase = BREAKAGES[name]
    g = graph(GRAPH_OF.get(name, "prod"))
    mutate(g)
    report = run_policies(g)
    assert not report.passed
    assert {v.policy for v in report.mandatory} == policies, report.render()
    assert all(phrase in v.message for v in report.mandatory), report.render()
    assert all(v.urn for v in report.mandatory)


def test_a_prod_config_the_validator_accepts_still_fails_policy() -> None:
    """Stack-config validation allows burstable classes (they are fine for dev); the pack refuses them in
    prod: CPU credits run out under load."""
    cfg = stack_config("prod")
    databases = json.loads(cfg["retail-platform:databases"])
    cluster = json.loads(cfg["retail-platform:cluster"])
    databases["instanceClass"] = "db.t4g.medium"
    cluster["nodeGroups"][0]["instanceTypes"] = ["t4g.large"]
    cfg = {**cfg, "retail-platform:databases": json.dumps(databases), "retail-platform:cluster": json.dumps(cluster)}
    result = run_plan("prod", config=cfg)  # accepted by config validation: no ConfigError
    report = run_policies(result.recording.resources)
    by_policy: dict[str, list[str]] = {}
    for v in report.mandatory:
        by_policy.setdefault(v.policy, []).append(v.message)
    assert set(by_policy) == {"instance-type-allowlist"}, report.render()
    assert len(by_policy["instance-type-allowlist"]) == len(_of(graph("prod"), "aws:rds/instance:Instance")) + 1
    assert all("t4g" in m and "allowedInstanceTypes" in m for m in by_policy["instance-type-allowlist"])
    rendered = report.render()
    assert "FAILED" in rendered
    assert "instanceClass db.t4g.medium is not allowed in prod stack 'prod'" in rendered


def test_report_files_and_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI over a plan's resources.json writes the report next to it; exit 0 when clean, 1 on a mandatory
    violation, 2 on input that is not a plan."""
    write_plan(planned("registry"), tmp_path / "registry")  # the stack that declares the ECR repositories
    assert offline_main([str(tmp_path / "registry" / "resources.json")]) == 0
    saved = json.loads((tmp_path / "registry" / "policy-report.json").read_text())
    assert saved["passed"] is True
    assert saved["mandatory"] == 0
    assert (tmp_path / "registry" / "policy-report.txt").read_text().startswith("policy pack")

    data = json.loads((tmp_path / "registry" / "resources.json").read_text())
    for r in data["resources"]:
        if r["type"] == "aws:ecr/repository:Repository":
            r["inputs"]["imageScanningConfiguration"] = {"scanOnPush": False}
    broken = tmp_path / "broken" / "resources.json"
    broken.parent.mkdir()
    broken.write_text(json.dumps(data))
    assert offline_main([str(broken)]) == 1
    assert "[mandatory] ecr-scan-on-push" in capsys.readouterr().out

    (tmp_path / "junk.json").write_text("[]")
    assert offline_main([str(tmp_path / "junk.json")]) == 2


def test_report_round_trips_as_json(tmp_path: Path) -> None:
    g = graph("dev")
    _key_without_rotation(g)
    path = write_report(run_policies(g), tmp_path)
    saved = json.loads(path.read_text())
    assert saved["by_policy"] == {"kms-key-rotation": 1}
    assert saved["violations"][0]["resource_type"] == "aws:kms/key:Key"


def test_the_offline_plan_writes_the_policy_report_and_fails_on_a_mandatory_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m tools.plan` writes policy-report.{json,txt} beside resources.json, prints it, and
    exits 3 when the pack finds a mandatory violation (0 on the committed stacks)."""
    from dataclasses import replace

    from tools.offline import Recording
    from tools.plan import PlanResult, main, policy_passed

    assert main(["--stack", "dev", "--out", str(tmp_path / "dev"), "--quiet"]) == 0
    assert "0 mandatory" in capsys.readouterr().out
    assert json.loads((tmp_path / "dev" / "policy-report.json").read_text())["passed"] is True

    result = planned("prod")
    broken = [
        replace(r, inputs={**r.inputs, "multiAz": False}) if r.type == "aws:rds/instance:Instance" else r
        for r in result.recording.resources
    ]
    write_plan(PlanResult("prod", Recording(broken, result.recording.outputs), result.seconds), tmp_path / "prod")
    assert not policy_passed(tmp_path / "prod")
    text = (tmp_path / "prod" / "policy-report.txt").read_text()
    assert "FAILED" in text
    assert "[mandatory] rds-prod-multi-az" in text
