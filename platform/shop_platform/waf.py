"""Pure WAFv2 rule builders, in the WAF API's own JSON shape (the web ACL takes them as ``rule_json``).

Order matters (lower priority runs first): known-bad IPs are dropped before anything is counted, the
per-IP and login rate limits run before the content-inspecting managed groups, so a flood is stopped at
the cheapest rule. Rate-limited requests get 429 (what the API contract promises), not WAF's default 403.
"""

from __future__ import annotations

from typing import Any, Final

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
    return {"Name": group, "Priority": priority, "OverrideAction": {"None": {}},
            "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": group}},
            "VisibilityConfig": _visibility(group)}


def rate_limit_rule(limit: int, priority: int) -> dict[str, Any]:
    """Every client IP: at most ``limit`` requests per 5-minute window."""
    return {"Name": "rate-per-ip", "Priority": priority, "Action": _too_many_requests(),
            "Statement": {"RateBasedStatement": {"Limit": limit, "AggregateKeyType": "IP",
                                                 "EvaluationWindowSec": RATE_WINDOW_SECONDS}},
            "VisibilityConfig": _visibility("rate-per-ip")}


def login_rate_limit_rule(limit: int, login_path: str, priority: int) -> dict[str, Any]:
    """Credential stuffing guard: a much lower per-IP limit on ``POST <login_path>``."""
    path_match = {"ByteMatchStatement": {
        "SearchString": login_path, "PositionalConstraint": "STARTS_WITH", "FieldToMatch": {"UriPath": {}},
        "TextTransformations": [{"Priority": 0, "Type": "LOWERCASE"}]}}
    post_match = {"ByteMatchStatement": {
        "SearchString": "POST", "PositionalConstraint": "EXACTLY", "FieldToMatch": {"Method": {}},
        "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}
    return {"Name": "rate-login", "Priority": priority, "Action": _too_many_requests(),
            "Statement": {"RateBasedStatement": {
                "Limit": limit, "AggregateKeyType": "IP", "EvaluationWindowSec": RATE_WINDOW_SECONDS,
                "ScopeDownStatement": {"AndStatement": {"Statements": [path_match, post_match]}}}},
            "VisibilityConfig": _visibility("rate-login")}


def build_web_acl_rules(rate_limit: int, login_rate_limit: int, login_path: str) -> list[dict[str, Any]]:
    """All rules of the API's web ACL, priorities unique and ascending."""
    if login_rate_limit >= rate_limit:
        raise ValueError("the login limit must be stricter than the general per-IP limit")
    reputation, *content = MANAGED_GROUPS
    return [
        managed_group_rule(reputation, 0),
        rate_limit_rule(rate_limit, 10),
        login_rate_limit_rule(login_rate_limit, login_path, 20),
        *(managed_group_rule(group, 30 + i) for i, group in enumerate(content)),
    ]


# Headers whose values never reach the WAF logs: bearer tokens and session cookies are credentials.
REDACTED_HEADERS: Final[tuple[str, ...]] = ("authorization", "cookie")
