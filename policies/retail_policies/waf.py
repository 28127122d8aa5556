"""WAFv2 rules: AWS managed rule groups that block, a rate-based rule, metrics, logging with credentials
redacted. FSBP WAF controls in brackets. Rules are read from ``ruleJson`` (the WAF API's PascalCase JSON)
or ``rules`` (the provider's camelCase objects): both are normalised to camelCase keys first."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from pulumi_policy import PolicyResource

from retail_policies._support import (
    Context,
    Rule,
    get,
    items,
    label,
    links,
    of_type,
    resource_policy,
    stack_policy,
    truthy,
)

WEB_ACL: Final = "aws:wafv2/webAcl:WebAcl"
LOGGING: Final = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
DOCS: Final = "https://docs.aws.amazon.com/securityhub/latest/userguide/waf-controls.html"
# The groups every web ACL here must run (block mode). Override with policy config ``requiredManagedGroups``.
REQUIRED_MANAGED_GROUPS: Final = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")
# Headers that carry credentials and must never reach WAF logs.
REDACTED_HEADERS: Final = ("authorization", "cookie")


def _camel(value: Any) -> Any:
    """A plain copy with every key's first letter lower-cased (``ManagedRuleGroupStatement`` ->
    ``managedRuleGroupStatement``), so the API JSON and the provider's objects read the same."""
    if isinstance(value, Mapping):
        return {(k[:1].lower() + k[1:]) if isinstance(k, str) else k: _camel(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_camel(v) for v in value]
    return value


def web_acl_rules(props: Any) -> list[dict[str, Any]]:
    """The web ACL's rules in camelCase, whichever input carries them."""
    raw = get(props, "ruleJson")
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except ValueError:
            return []
        return [r for r in _camel(parsed) if isinstance(r, dict)] if isinstance(parsed, list) else []
    return [r for r in _camel(items(get(props, "rules"))) if isinstance(r, dict)]


def _blocks(rule: Mapping[str, Any]) -> bool:
    """A rule's action blocks (or a managed group runs unmodified, i.e. its own block actions apply)."""
    if "overrideAction" in rule:
        return "none" in (rule.get("overrideAction") or {})
    return "block" in (rule.get("action") or {})


def check_managed_groups(props: Any, ctx: Context) -> Iterable[str]:
    required = [str(g) for g in items(ctx.config.get("requiredManagedGroups"))] or list(REQUIRED_MANAGED_GROUPS)
    groups: dict[str, dict[str, Any]] = {}
    for rule in web_acl_rules(props):
        stmt = (rule.get("statement") or {}).get("managedRuleGroupStatement")
        if isinstance(stmt, dict) and stmt.get("vendorName") == "AWS":
            groups[str(stmt.get("name"))] = rule
    for name in required:
        if name not in groups:
            yield (
                f"AWS managed rule group {name} is missing; add a rule with managedRuleGroupStatement "
                f"{{vendorName: AWS, name: {name}}} and overrideAction none"
            )
        elif not _blocks(groups[name]):
            yield (
                f"AWS managed rule group {name} runs in count mode (overrideAction count): it logs attacks "
                "but blocks none; use overrideAction {none: {}}"
            )


def check_rate_rule(props: Any, ctx: Context) -> Iterable[str]:
    for rule in web_acl_rules(props):
        stmt = (rule.get("statement") or {}).get("rateBasedStatement")
        if isinstance(stmt, dict) and stmt.get("limit") and _blocks(rule):
            return
    yield (
        "no rate-based rule that blocks: one client can flood the API; add a rule with rateBasedStatement "
        "{limit: <requests per window>, aggregateKeyType: IP} and action block (e.g. 429)"
    )


def check_metrics(props: Any, ctx: Context) -> Iterable[str]:
    if not truthy(get(props, "visibilityConfig", "cloudwatchMetricsEnabled")):
        yield "visibilityConfig.cloudwatchMetricsEnabled is not true: blocked traffic is invisible [WAF.12]"
    for rule in web_acl_rules(props):
        if not truthy(
            (rule.get("visibilityConfig") or {}).get(
                "cloudWatchMetricsEnabled", (rule.get("visibilityConfig") or {}).get("cloudwatchMetricsEnabled")
            )
        ):
            yield f"rule {rule.get('name')!r} has CloudWatch metrics off; enable them [WAF.12]"


def check_logging_redaction(props: Any, ctx: Context) -> Iterable[str]:
    redacted = {str(get(f, "singleHeader", "name", default="")).lower() for f in items(get(props, "redactedFields"))}
    missing = [h for h in REDACTED_HEADERS if h not in redacted]
    if missing:
        yield (
            f"WAF logs would carry the {missing} header(s) (bearer tokens, session cookies); add "
            "redacted_fields=[{single_header: {name: <header>}}] for each"
        )


def check_logging(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    acls = of_type(resources, WEB_ACL)
    configs = of_type(resources, LOGGING)
    for acl in acls:
        if not any(acl in links(c, "resourceArn", acls) for c in configs):
            yield (
                f"{label(acl)} has no logging: add aws.wafv2.WebAclLoggingConfiguration(resource_arn=acl.arn, "
                "log_destination_configs=[<aws-waf-logs-* log group>]) [WAF.11]",
                acl.urn,
            )


POLICIES: Final[list[Rule]] = [
    resource_policy(
        "waf-managed-rule-groups",
        "Web ACLs run the AWS managed rule groups in block mode [WAF.10]",
        (WEB_ACL,),
        check_managed_groups,
        remediation="rules: AWSManagedRulesCommonRuleSet, AWSManagedRulesKnownBadInputsRuleSet",
        config_schema={"requiredManagedGroups": {"type": "array", "items": {"type": "string"}}},
        url=DOCS,
    ),
    resource_policy(
        "waf-rate-based-rule",
        "Web ACLs have a blocking per-IP rate-based rule",
        (WEB_ACL,),
        check_rate_rule,
        remediation="a rateBasedStatement rule with a block action",
        url=DOCS,
    ),
    resource_policy(
        "waf-metrics",
        "Web ACLs and their rules publish CloudWatch metrics [WAF.12]",
        (WEB_ACL,),
        check_metrics,
        remediation="visibility_config.cloudwatch_metrics_enabled=True",
        url=DOCS,
    ),
    resource_policy(
        "waf-logging-redacts-credentials",
        "WAF logs redact the authorization and cookie headers",
        (LOGGING,),
        check_logging_redaction,
        remediation="redacted_fields for authorization and cookie",
        url=DOCS,
    ),
    stack_policy(
        "waf-logging",
        "Every web ACL has logging configured [WAF.11]",
        check_logging,
        remediation="aws.wafv2.WebAclLoggingConfiguration per web ACL",
        url=DOCS,
    ),
]
