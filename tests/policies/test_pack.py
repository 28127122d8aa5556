"""The pack as a whole: enough rules, each documented and tested three ways, importable without starting a
server, pinned like the repository, and in agreement with what the program itself considers valid."""

from __future__ import annotations

import ast
import inspect
import tomllib
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE
from retail_policies import POLICIES, alb, eks, governance, waf
from retail_policies._support import environment_of, stack_of
from retail_policies.offline import run_policies
from shop_platform import tags, versions
from shop_platform import waf as platform_waf
from shop_platform.config import DB_INSTANCE_CLASSES, NODE_INSTANCE_TYPES

from tests.policies import test_resource_rules, test_stack_rules
from tests.policies.conftest import graph
from tests.policies.support import check_resource

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policies"


def test_pack_has_at_least_25_uniquely_named_documented_rules() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) >= 25
    assert len(set(names)) == len(names)
    for p in POLICIES:
        assert p.description
        assert p.remediation_steps, p.name
        assert p.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY)


def test_every_rule_has_its_compliant_non_compliant_and_missing_property_tests() -> None:
    """Resource rules: one row each in the three-way table. Stack rules: named in test_stack_rules."""
    resource_rules = {p.name for p in POLICIES if isinstance(p, ResourceValidationPolicy)}
    assert {c.policy for c in test_resource_rules.CASES} == resource_rules
    stack_rules = {p.name for p in POLICIES if isinstance(p, StackValidationPolicy)}
    source = inspect.getsource(test_stack_rules)
    untested = {name for name in stack_rules if f'"{name}"' not in source}
    assert untested == set()


def test_policy_pack_is_constructed_only_in_main() -> None:
    """PolicyPack() starts a gRPC server and blocks: a module importing rules must never construct one."""
    calls: dict[str, int] = {}
    for path in PACK.rglob("*.py"):
        if "venv" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        n = sum(
            1
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "PolicyPack"
        )
        if n:
            calls[str(path.relative_to(PACK))] = n
    assert calls == {"__main__.py": 1}


def test_pack_files_and_pins_match_the_repository() -> None:
    assert (PACK / "PulumiPolicy.yaml").read_text().count("name: python") == 1
    # The pack installs the platform lock, whose pins tests/test_lock_files.py holds to pyproject.toml's.
    assert "-r ../requirements/platform.txt" in (PACK / "requirements.txt").read_text().splitlines()
    platform = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["platform"]
    assert {p.split("==")[0] for p in platform} >= {"pulumi", "pulumi-policy"}


def test_rules_agree_with_what_the_program_considers_valid() -> None:
    """Where the program and the pack both name a value, they agree (a drift here means one of them is stale)."""
    # The pack admits the minors that were in EKS standard support when the pins were last checked.
    assert set(eks.SUPPORTED_VERSIONS) == {
        v for v, w in versions.EKS_SUPPORT.items() if w.end_of_standard_support >= versions.PINS_CHECKED_ON
    }
    assert set(governance.REQUIRED_TAGS) == set(tags.REQUIRED_TAG_KEYS)
    assert alb.MODERN_TLS.match(versions.ALB_SSL_POLICY)
    assert set(waf.REQUIRED_MANAGED_GROUPS) <= set(platform_waf.MANAGED_GROUPS)
    assert set(platform_waf.REDACTED_HEADERS) >= set(waf.REDACTED_HEADERS)
    # Every type prod allows is one the config accepts (the reverse is deliberately not true: t4g in prod).
    prod = governance.ALLOWED_INSTANCE_TYPES["prod"]
    assert prod <= NODE_INSTANCE_TYPES | DB_INSTANCE_CLASSES


def test_every_taggable_type_in_the_plans_is_listed() -> None:
    """The tag rule's type list covers every taggable type the program declares (read from the SDK)."""
    import importlib

    declared = {r["type"] for stack in ("dev", "prod") for r in graph(stack) if r["type"].startswith("aws:")}
    taggable = set()
    for t in declared:
        module, cls = t.split(":")[1].split("/")[0], t.split(":")[2]
        klass = getattr(importlib.import_module(f"pulumi_aws.{module}"), cls)
        if "tags" in inspect.signature(klass._internal_init).parameters:
            taggable.add(t)
    assert taggable - governance.TAGGABLE_TYPES == set()


@pytest.mark.parametrize(
    ("stack", "env"), [("prod", "prod"), ("prod-eu", "prod"), ("dev", "dev"), ("local", "local"), ("feature-x", "dev")]
)
def test_environment_from_stack_name(stack: str, env: str) -> None:
    assert stack_of(f"urn:pulumi:{stack}::retail-platform::aws:kms/key:Key::k") == stack
    assert environment_of(stack) == env


def test_prod_rules_follow_config_and_tags_when_the_name_does_not_say_prod() -> None:
    props = {"multiAz": False, "tags": {"environment": "dev"}}
    assert check_resource("rds-prod-multi-az", "aws:rds/instance:Instance", props, stack="eu-main") == []
    assert check_resource(
        "rds-prod-multi-az", "aws:rds/instance:Instance", props, stack="eu-main", config={"environment": "prod"}
    )
    assert check_resource(
        "rds-prod-multi-az",
        "aws:rds/instance:Instance",
        {"multiAz": False, "tags": {"environment": "prod"}},
        stack="eu-main",
    )


def test_config_overrides_allowlists() -> None:
    node = "aws:eks/nodeGroup:NodeGroup"
    assert check_resource(
        "instance-type-allowlist",
        node,
        {"instanceTypes": ["m7g.large"]},
        stack="prod",
        config={"allowedInstanceTypes": ["c7g.large"]},
    )
    assert (
        check_resource(
            "instance-type-allowlist",
            node,
            {"instanceTypes": ["x2gd.large"]},
            stack="dev",
            config={"allowedInstanceTypes": ["x2gd.large"]},
        )
        == []
    )
    assert (
        check_resource(
            "eks-supported-version",
            "aws:eks/cluster:Cluster",
            {"version": "1.36"},
            config={"supportedVersions": ["1.36"]},
        )
        == []
    )


def test_an_unknown_value_is_reported_as_not_run_like_the_cli_does() -> None:
    """During preview a value may be unknown; the engine then reports "can't run during preview" (advisory)
    instead of a pass or a violation. The offline runner does the same, and never counts it as a pass of a
    mandatory rule silently: it is listed under not_run."""
    g = graph("dev")
    key = next(r for r in g if r["type"] == "aws:kms/key:Key")
    key["inputs"]["enableKeyRotation"] = UNKNOWN_BOOLEAN_VALUE
    report = run_policies(g)
    assert report.mandatory == []
    assert [(v.policy, v.level) for v in report.not_run] == [("kms-key-rotation", "advisory")]
    assert "can't run during preview" in report.not_run[0].message


def test_a_rule_that_crashes_fails_the_run() -> None:
    def broken(args: object, report: object) -> None:
        raise KeyError("boom")

    crashing = ResourceValidationPolicy("crashing", "always raises", broken)
    report = run_policies(graph("dev")[:3], policies=[crashing])
    assert not report.passed
    assert "KeyError" in report.not_run[0].message


def test_readme_lists_every_rule_and_the_cli_command() -> None:
    readme = (PACK / "README.md").read_text()
    assert [p.name for p in POLICIES if f"| `{p.name}` |" not in readme] == []
    assert "pulumi preview --stack dev  --policy-pack policies" in readme
