"""Stack config: the real stack files parse; every bad value fails before any resource, naming its key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from shop_platform.config import ConfigError, parse_stack_config

from tools.plan import stack_config


def _raw(stack: str) -> tuple[dict[str, Any], str]:
    cfg = stack_config(stack)
    raw = {
        k.removeprefix("retail-platform:"): json.loads(v) if v[:1] in "[{" else v
        for k, v in cfg.items()
        if k.startswith("retail-platform:")
    }
    return raw, cfg["aws:region"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stack_files_are_valid(stack: str) -> None:
    """The stack files in the repository must always pass validation, or `pulumi up` fails on its first line."""
    raw, region = _raw(stack)
    cfg = parse_stack_config(stack, raw, region)
    assert cfg.environment == stack
    assert cfg.is_prod == (stack == "prod")


def test_prod_defaults_are_the_safe_ones() -> None:
    """Leaving a prod setting out must give the resilient choice (multi-AZ, protection, Shield, NAT per AZ)."""
    raw, region = _raw("prod")
    for section, key in [
        ("databases", "multiAz"),
        ("databases", "deletionProtection"),
        ("edge", "shieldAdvanced"),
        ("network", "natGateways"),
        ("network", "azCount"),
    ]:
        del raw[section][key]
    cfg = parse_stack_config("prod", raw, region)
    assert cfg.databases.multi_az
    assert cfg.databases.deletion_protection
    assert cfg.edge.shield_advanced
    assert cfg.network.nat_gateways == "per_az"
    assert cfg.network.az_count == 3


BAD_VALUES: list[tuple[str, str, list[Any], Any, str]] = [
    # (id, stack, path into raw config, bad value, key the error must name)
    ("malformed-cidr", "dev", ["network", "cidr"], "10.20.0.0/33", "network.cidr"),
    ("cidr-host-bits-set", "dev", ["network", "cidr"], "10.20.1.0/16", "network.cidr"),
    ("public-vpc-cidr", "dev", ["network", "cidr"], "8.8.0.0/16", "network.cidr"),
    ("too-small-vpc", "dev", ["network", "cidr"], "10.20.0.0/24", "network.cidr"),
    ("unknown-nat-mode", "dev", ["network", "natGateways"], "none", "network.natGateways"),
    ("prod-single-nat", "prod", ["network", "natGateways"], "single", "network.natGateways"),
    ("prod-two-azs", "prod", ["network", "azCount"], 2, "network.azCount"),
    ("unknown-db-instance-class", "dev", ["databases", "instanceClass"], "db.x9.huge", "databases.instanceClass"),
    ("prod-without-multi-az", "prod", ["databases", "multiAz"], False, "databases.multiAz"),
    (
        "prod-without-deletion-protection",
        "prod",
        ["databases", "deletionProtection"],
        False,
        "databases.deletionProtection",
    ),
    ("backups-under-7-days", "dev", ["databases", "backupRetentionDays"], 3, "databases.backupRetentionDays"),
    ("storage-ceiling-below-size", "dev", ["databases", "maxAllocatedGib"], 10, "databases.maxAllocatedGib"),
    ("domain-not-a-domain", "dev", ["domain"], "shop_example", "domain"),
    ("domain-with-scheme", "dev", ["domain"], "https://shop.example.com", "domain"),
    ("unsupported-eks-version", "dev", ["cluster", "version"], "1.21", "cluster.version"),
    ("api-endpoint-open-to-world", "dev", ["cluster", "publicAccessCidrs"], ["0.0.0.0/0"], "cluster.publicAccessCidrs"),
    (
        "api-endpoint-cidr-malformed",
        "dev",
        ["cluster", "publicAccessCidrs"],
        ["203.0.113.0/99"],
        "cluster.publicAccessCidrs",
    ),
    ("no-admin-roles", "dev", ["cluster", "adminRoleArns"], [], "cluster.adminRoleArns"),
    (
        "admin-not-a-role-arn",
        "dev",
        ["cluster", "adminRoleArns"],
        ["arn:aws:iam::123:user/bob"],
        "cluster.adminRoleArns",
    ),
    (
        "x86-node-type-on-arm-ami",
        "dev",
        ["cluster", "nodeGroups", 0, "instanceTypes"],
        ["m7i.large"],
        "cluster.nodeGroups[0].instanceTypes",
    ),
    (
        "desired-outside-bounds",
        "dev",
        ["cluster", "nodeGroups", 0, "desiredSize"],
        9,
        "cluster.nodeGroups[0].desiredSize",
    ),
    (
        "node-group-mixes-sizes",
        "prod",
        ["cluster", "nodeGroups", 0, "instanceTypes"],
        ["m7g.xlarge", "m7g.large"],
        "cluster.nodeGroups[0].instanceTypes",
    ),
    (
        "prod-public-api-endpoint",
        "prod",
        ["cluster", "publicAccessCidrs"],
        ["198.51.100.10/32"],
        "cluster.publicAccessCidrs",
    ),
    (
        "private-access-from-public-range",
        "prod",
        ["cluster", "privateAccessCidrs"],
        ["52.94.0.0/24"],
        "cluster.privateAccessCidrs",
    ),
    (
        "viewer-also-admin",
        "dev",
        ["cluster", "viewRoleArns"],
        ["arn:aws:iam::111122223333:role/shop-ci-deployer"],
        "cluster.viewRoleArns",
    ),
    ("prod-too-few-nodes", "prod", ["cluster", "nodeGroups", 0, "minSize"], 1, "cluster.nodeGroups"),
    ("login-limit-not-stricter", "dev", ["edge", "loginRateLimitPer5Min"], 5000, "edge.loginRateLimitPer5Min"),
    ("prod-without-shield", "prod", ["edge", "shieldAdvanced"], False, "edge.shieldAdvanced"),
    ("alert-email-malformed", "prod", ["edge", "alertEmail"], "oncall", "edge.alertEmail"),
    ("retention-not-a-cloudwatch-period", "dev", ["edge", "logRetentionDays"], 31, "edge.logRetentionDays"),
    ("typo-in-a-key", "dev", ["databases", "multiAZ"], True, "databases.multiAZ"),
    ("typo-in-a-top-level-key", "dev", ["domian"], "shop.example.com", "domian"),
    ("bool-as-word", "dev", ["databases", "multiAz"], "yes", "databases.multiAz"),
    ("unknown-environment", "dev", ["environment"], "staging", "environment"),
    ("owner-not-tag-safe", "dev", ["owner"], "Platform Team", "owner"),
]


@pytest.mark.parametrize(("stack", "path", "value", "key"), [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES])
def test_bad_value_fails_naming_the_key_and_what_is_allowed(stack: str, path: list[Any], value: Any, key: str) -> None:
    """A bad value must stop the program before any resource exists, and say which key and what is allowed,
    so the fix is obvious from the first line of output (not an AWS API error 20 minutes into an apply)."""
    raw, region = _raw(stack)
    raw = copy.deepcopy(raw)
    target: Any = raw
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        parse_stack_config(stack, raw, region)
    assert err.value.key == key
    assert f"retail-platform:{key}" in str(err.value)
    assert "allowed:" in str(err.value)


def test_bad_region_is_refused() -> None:
    """aws:region drives AZ lookups and ARNs; a typo must fail up front."""
    raw, _ = _raw("dev")
    with pytest.raises(ConfigError, match="aws:region"):
        parse_stack_config("dev", raw, "europe-west")


def test_structured_values_arrive_as_json_strings() -> None:
    """The engine passes objects as JSON strings; the parser must accept that form as well as mappings."""
    raw, region = _raw("dev")
    as_engine = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in raw.items()}
    assert parse_stack_config("dev", as_engine, region) == parse_stack_config("dev", raw, region)


def test_the_config_models_import_nothing_they_configure() -> None:
    """config.py is the bottom of the library: the components and the Kubernetes layer import their sections from
    it, so it may import none of them (not even lazily), or the config <-> component cycle is back."""
    import ast

    from shop_platform import config

    tree = ast.parse(Path(config.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    library = {m for m in imported if m.startswith("shop_platform")}
    assert library <= {"shop_platform"}, library  # `from shop_platform import versions`: pins only
    assert "versions" in {
        a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "shop_platform"
        for a in node.names
    }
