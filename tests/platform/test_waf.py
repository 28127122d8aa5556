"""WAF rule builders (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from shop_platform import waf
from shop_platform.config import ConfigError, EdgeConfig, validate


def _rules() -> list[dict[str, Any]]:
    return waf.build_web_acl_rules(validate(EdgeConfig, {"rateLimitPer5Min": 2000, "loginRateLimitPer5Min": 100}))


def test_all_required_aws_managed_groups_are_present() -> None:
    """Common, known-bad-inputs, SQLi and IP reputation are the baseline FSBP WAF.10 and the design require."""
    names = {
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for r in _rules()
        if "ManagedRuleGroupStatement" in r["Statement"]
    }
    assert names == {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesSQLiRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    }


def test_priorities_are_unique_and_rate_limits_run_before_content_inspection() -> None:
    """WAF rejects duplicate priorities; floods must be cut by the cheap rate rules before body inspection."""
    rules = _rules()
    priorities = [r["Priority"] for r in rules]
    assert len(set(priorities)) == len(priorities)
    by_name = {r["Name"]: r["Priority"] for r in rules}
    assert by_name["rate-per-ip"] < by_name["AWSManagedRulesCommonRuleSet"]
    assert by_name["rate-login"] < by_name["AWSManagedRulesSQLiRuleSet"]


def test_login_rule_is_stricter_and_scoped_to_post_on_the_login_path() -> None:
    """Credential stuffing targets POST /api/v1/sessions; a stricter per-IP limit there must not throttle
    reads elsewhere."""
    login = next(r for r in _rules() if r["Name"] == "rate-login")
    stmt = login["Statement"]["RateBasedStatement"]
    assert stmt["Limit"] == 100
    assert stmt["AggregateKeyType"] == "IP"
    parts = stmt["ScopeDownStatement"]["AndStatement"]["Statements"]
    searches = {p["ByteMatchStatement"]["SearchString"] for p in parts}
    assert searches == {"/api/v1/sessions", "POST"}


def test_rate_limited_requests_get_429_not_403() -> None:
    """The API contract promises 429 for rate limiting; a 403 would read as an authorization failure."""
    for rule in _rules():
        if "RateBasedStatement" in rule["Statement"]:
            assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429


def test_managed_groups_keep_their_own_actions_and_every_rule_emits_metrics() -> None:
    """OverrideAction None keeps the groups blocking (Count would silently disable them); metrics = FSBP WAF.12."""
    for rule in _rules():
        assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
        if "ManagedRuleGroupStatement" in rule["Statement"]:
            assert rule["OverrideAction"] == {"None": {}}


def test_login_limit_must_be_stricter() -> None:
    """A login limit at or above the general one would be a no-op rule that looks like protection."""
    with pytest.raises(ConfigError, match="stricter"):
        validate(EdgeConfig, {"rateLimitPer5Min": 100, "loginRateLimitPer5Min": 100})


def test_authorization_header_is_redacted_from_logs() -> None:
    """Bearer tokens in WAF logs would let anyone with log access impersonate users."""
    assert "authorization" in waf.REDACTED_HEADERS


def test_rules_are_accepted_by_the_wafv2_api_model() -> None:
    """The web ACL takes these as raw JSON (``rule_json``), which the Pulumi schema does not check; botocore's
    request validation against the WAFv2 service model (and moto behind it) does: a misspelt member such as
    ``EvaluationWindowSecs`` fails here instead of at apply time."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("wafv2", region_name="eu-west-1")
        acl = client.create_web_acl(
            Name="api",
            Scope="REGIONAL",
            DefaultAction={"Allow": {}},
            Rules=_rules(),
            VisibilityConfig={"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "api"},
        )
        rules = client.get_web_acl(Name="api", Scope="REGIONAL", Id=acl["Summary"]["Id"])["WebACL"]["Rules"]
    assert [r["Name"] for r in rules] == [r["Name"] for r in _rules()]


def test_an_invalid_rule_member_is_refused_by_the_model_check() -> None:
    """Guard: the model check above must actually reject bad members, or it proves nothing."""
    import boto3
    from botocore.exceptions import ParamValidationError

    bad = _rules()
    bad[1]["Statement"]["RateBasedStatement"]["EvaluationWindowSecs"] = 300
    client = boto3.client("wafv2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with pytest.raises(ParamValidationError):
        client.create_web_acl(
            Name="api",
            Scope="REGIONAL",
            DefaultAction={"Allow": {}},
            Rules=bad,
            VisibilityConfig={"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "api"},
        )


def test_rules_translate_to_the_providers_typed_schema() -> None:
    """Typed ``rules`` (unlike ``rule_json``) are drift-detected; every API member must map onto a field of
    the provider's schema, down to the byte-match inside the login rule's scope-down statement."""
    typed = waf.web_acl_rule_args(_rules())
    login = next(r for r in typed if r.name == "rate-login")
    scope = login.statement.rate_based_statement.scope_down_statement  # type: ignore[union-attr]
    assert scope.and_statement.statements[0].byte_match_statement.search_string == "/api/v1/sessions"  # type: ignore[union-attr,index]
    assert login.action.block.custom_response.response_code == 429  # type: ignore[union-attr]


def test_a_member_unknown_to_the_provider_schema_is_refused() -> None:
    """Guard: the translation must fail on a member the provider does not know instead of dropping it."""
    bad = _rules()
    bad[1]["Statement"]["RateBasedStatement"]["EvaluationWindowSecs"] = 300
    with pytest.raises(TypeError, match="evaluation_window_secs"):
        waf.web_acl_rule_args(bad)
