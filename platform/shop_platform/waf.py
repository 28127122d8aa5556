"""Pure WAFv2 rule builders, in the WAF API's own JSON shape, and their strict translation to Pulumi args.

The rules are written once, in the shape of the WAFv2 API (``CreateWebACL``), so tests can check them
against the AWS service model offline. The web ACL gets them as typed ``rules`` (``web_acl_rule_args``), not
as ``rule_json``: with ``rule_json`` the provider does no drift detection, so a rule disabled in the console
would never show up in ``pulumi preview``.

Order matters (lower priority runs first): known-bad IPs are dropped before anything is counted, the
per-IP and login rate limits run before the content-inspecting managed groups, so a flood is stopped at
the cheapest rule. Rate-limited requests get 429 (what the API contract promises), not WAF's default 403.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Final

import pulumi_aws as aws

from shop_platform.config import EdgeConfig

# AWS managed rule groups the platform always runs, in evaluation order.
MANAGED_GROUPS: Final[tuple[str, ...]] = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesSQLiRuleSet",
)
RATE_WINDOW_SECONDS: Final = 300


def _visibility(metric: str) -> dict[str, Any]:
    return {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": metric}


def _too_many_requests() -> dict[str, Any]:
    return {"Block": {"CustomResponse": {"ResponseCode": 429}}}


def managed_group_rule(group: str, priority: int) -> dict[str, Any]:
    return {
        "Name": group,
        "Priority": priority,
        "OverrideAction": {"None": {}},
        "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": group}},
        "VisibilityConfig": _visibility(group),
    }


def rate_limit_rule(limit: int, priority: int) -> dict[str, Any]:
    """Every client IP: at most ``limit`` requests per 5-minute window."""
    return {
        "Name": "rate-per-ip",
        "Priority": priority,
        "Action": _too_many_requests(),
        "Statement": {
            "RateBasedStatement": {"Limit": limit, "AggregateKeyType": "IP", "EvaluationWindowSec": RATE_WINDOW_SECONDS}
        },
        "VisibilityConfig": _visibility("rate-per-ip"),
    }


def login_rate_limit_rule(limit: int, login_path: str, priority: int) -> dict[str, Any]:
    """Credential stuffing guard: a much lower per-IP limit on ``POST <login_path>``."""
    path_match = {
        "ByteMatchStatement": {
            "SearchString": login_path,
            "PositionalConstraint": "STARTS_WITH",
            "FieldToMatch": {"UriPath": {}},
            "TextTransformations": [{"Priority": 0, "Type": "LOWERCASE"}],
        }
    }
    post_match = {
        "ByteMatchStatement": {
            "SearchString": "POST",
            "PositionalConstraint": "EXACTLY",
            "FieldToMatch": {"Method": {}},
            "TextTransformations": [{"Priority": 0, "Type": "NONE"}],
        }
    }
    return {
        "Name": "rate-login",
        "Priority": priority,
        "Action": _too_many_requests(),
        "Statement": {
            "RateBasedStatement": {
                "Limit": limit,
                "AggregateKeyType": "IP",
                "EvaluationWindowSec": RATE_WINDOW_SECONDS,
                "ScopeDownStatement": {"AndStatement": {"Statements": [path_match, post_match]}},
            }
        },
        "VisibilityConfig": _visibility("rate-login"),
    }


def build_web_acl_rules(edge: EdgeConfig) -> list[dict[str, Any]]:
    """All rules of the API's web ACL, priorities unique and ascending. The limits come from the validated
    ``edge`` section (the login limit is stricter than the general one: config.EdgeConfig checks it)."""
    reputation, *content = MANAGED_GROUPS
    return [
        managed_group_rule(reputation, 0),
        rate_limit_rule(edge.rate_limit_per_5min, 10),
        login_rate_limit_rule(edge.login_rate_limit_per_5min, edge.login_path, 20),
        *(managed_group_rule(group, 30 + i) for i, group in enumerate(content)),
    ]


# Headers whose values never reach the WAF logs: bearer tokens and session cookies are credentials.
REDACTED_HEADERS: Final[tuple[str, ...]] = ("authorization", "cookie")


_ARGS_CLASS = re.compile(r"ForwardRef\('(\w+Args)'\)")


def _snake(key: str) -> str:
    # The provider spells CloudWatch as one word (cloudwatch_metrics_enabled).
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key.replace("CloudWatch", "Cloudwatch")).lower()


def _typed(cls: Any, value: dict[str, Any]) -> Any:
    """Build ``cls`` (a pulumi_aws.wafv2 *Args class) from API-shaped JSON, following the SDK's type hints.
    A member the provider schema does not have raises TypeError here, at preview time, not in AWS."""
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    for key, item in value.items():
        name = _snake(key)
        if name not in params or name == "self":
            raise TypeError(f"{cls.__name__} has no field {name!r} (from WAF API member {key!r})")
        nested = _ARGS_CLASS.search(str(params[name].annotation))
        if nested and isinstance(item, dict):
            item = _typed(getattr(aws.wafv2, nested.group(1)), item)
        elif nested and isinstance(item, list):
            item = [_typed(getattr(aws.wafv2, nested.group(1)), x) if isinstance(x, dict) else x for x in item]
        kwargs[name] = item
    return cls(**kwargs)


def web_acl_rule_args(rules: list[dict[str, Any]]) -> list[aws.wafv2.WebAclRuleArgs]:
    """The API-shaped rules as the web ACL's typed ``rules`` input."""
    return [_typed(aws.wafv2.WebAclRuleArgs, rule) for rule in rules]
