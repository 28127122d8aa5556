"""ALB rules: HTTP only redirects, modern TLS, invalid headers dropped, desync mitigation, access logs,
deletion protection in prod, and a WAF web ACL on every internet-facing ALB. FSBP ELB controls in brackets."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from pulumi_policy import PolicyResource

from retail_policies._support import (
    Context,
    Rule,
    get,
    items,
    known,
    label,
    links,
    of_type,
    resource_policy,
    stack_policy,
    truthy,
)

LOAD_BALANCER: Final = "aws:lb/loadBalancer:LoadBalancer"
ALB_ALIAS: Final = "aws:alb/loadBalancer:LoadBalancer"
LISTENER: Final = "aws:lb/listener:Listener"
LISTENER_ALIAS: Final = "aws:alb/listener:Listener"
WEB_ACL: Final = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION: Final = "aws:wafv2/webAclAssociation:WebAclAssociation"
LBS: Final = (LOAD_BALANCER, ALB_ALIAS)
LISTENERS: Final = (LISTENER, LISTENER_ALIAS)
DOCS: Final = "https://docs.aws.amazon.com/securityhub/latest/userguide/elb-controls.html"

# TLS 1.3 policies (with TLS 1.2 forward-secret AEAD fallbacks or TLS 1.3 only), FIPS and post-quantum
# variants included; the "Ext" variants (CBC ciphers) and every pre-2021 policy are refused [ELB.17].
MODERN_TLS: Final = re.compile(
    r"^ELBSecurityPolicy-(TLS13-1-[23](-Res)?(-PQ)?(-FIPS)?-\d{4}-\d{2}|FS-1-2-Res-2020-10)$"
)


def _is_application(props: Any) -> bool:
    return bool(get(props, "loadBalancerType", default="application") == "application")


def check_http_redirects(props: Any, ctx: Context) -> Iterable[str]:
    if str(get(props, "protocol", default="")).upper() != "HTTP":
        return
    actions = items(get(props, "defaultActions"))
    if not actions:
        yield "the HTTP listener has no default action; make it redirect to HTTPS (HTTP_301, port 443)"
        return
    for action in actions:
        kind = get(action, "type")
        if kind == "redirect" and str(get(action, "redirect", "protocol", default="")).upper() == "HTTPS":
            continue
        yield (
            f"the HTTP listener's default action is {kind!r}, so requests are served in plaintext; use "
            "{type: 'redirect', redirect: {protocol: 'HTTPS', port: '443', status_code: 'HTTP_301'}} [ELB.1]"
        )


def check_tls_policy(props: Any, ctx: Context) -> Iterable[str]:
    if str(get(props, "protocol", default="")).upper() not in ("HTTPS", "TLS"):
        return
    policy = get(props, "sslPolicy")
    allowed = [str(p) for p in items(ctx.config.get("allowedSslPolicies"))]
    if policy is None:
        yield (
            "sslPolicy is not set: AWS applies ELBSecurityPolicy-2016-08 (TLS 1.0); set ssl_policy to a TLS 1.3 "
            "policy such as ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
        )
    elif (str(policy) not in allowed) if allowed else not MODERN_TLS.match(str(policy)):
        yield (
            f"sslPolicy {policy} allows outdated protocols or ciphers; use ELBSecurityPolicy-TLS13-1-2-Res-2021-06 "
            "or another TLS13 policy [ELB.17]"
        )


def check_drop_invalid_headers(props: Any, ctx: Context) -> Iterable[str]:
    if _is_application(props) and not truthy(get(props, "dropInvalidHeaderFields")):
        yield (
            "dropInvalidHeaderFields is not true: headers with invalid characters reach the backends "
            "(request smuggling/desync risk); set drop_invalid_header_fields=True [ELB.4]"
        )


def check_desync(props: Any, ctx: Context) -> Iterable[str]:
    mode = get(props, "desyncMitigationMode", default="defensive")  # AWS default: defensive
    if _is_application(props) and mode not in ("defensive", "strictest"):
        yield f"desyncMitigationMode is {mode!r}; use 'strictest' (or at least 'defensive') [ELB.12]"


def check_access_logs(props: Any, ctx: Context) -> Iterable[str]:
    logs = get(props, "accessLogs")
    if not truthy(get(logs, "enabled")) or not get(logs, "bucket"):
        yield (
            "access logs are off: there is no record of who called what; set access_logs={bucket: <private "
            "encrypted bucket>, enabled: True} [ELB.5]"
        )


def check_prod_deletion_protection(props: Any, ctx: Context) -> Iterable[str]:
    if ctx.prod and not truthy(get(props, "enableDeletionProtection")):
        yield (
            f"enableDeletionProtection is off in stack '{ctx.stack}': a destroy or replace would drop the "
            "public entry point and its DNS name; set enable_deletion_protection=True in prod [ELB.6]"
        )


def _internet_facing_albs(resources: list[PolicyResource]) -> list[PolicyResource]:
    return [
        lb
        for lb in of_type(resources, *LBS)
        if known(lb.props, "loadBalancerType", default="application") == "application"
        and not truthy(known(lb.props, "internal"))
    ]


def check_waf_association(resources: list[PolicyResource], ctx: Context) -> Iterable[tuple[str, str | None]]:
    acls = of_type(resources, WEB_ACL)
    associations = of_type(resources, WEB_ACL_ASSOCIATION)
    for alb in _internet_facing_albs(resources):
        attached = [a for a in associations if alb in links(a, "resourceArn", _internet_facing_albs(resources))]
        with_acl = [a for a in attached if links(a, "webAclArn", acls) or known(a.props, "webAclArn")]
        if not with_acl:
            yield (
                f"{label(alb)} is internet-facing without a WAF web ACL: add an aws.wafv2.WebAclAssociation "
                "(resource_arn=<alb>.arn, web_acl_arn=<acl>.arn) [ELB.16]",
                alb.urn,
            )


POLICIES: Final[list[Rule]] = [
    resource_policy(
        "alb-http-redirects-to-https",
        "Plain-HTTP listeners only redirect to HTTPS [ELB.1]",
        LISTENERS,
        check_http_redirects,
        remediation="HTTP listener default action: redirect to HTTPS 301",
        url=DOCS,
    ),
    resource_policy(
        "alb-modern-tls-policy",
        "HTTPS listeners use a TLS 1.3 security policy [ELB.17]",
        LISTENERS,
        check_tls_policy,
        remediation="ssl_policy=ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        config_schema={"allowedSslPolicies": {"type": "array", "items": {"type": "string"}}},
        url=DOCS,
    ),
    resource_policy(
        "alb-drop-invalid-headers",
        "ALBs drop invalid HTTP header fields [ELB.4]",
        LBS,
        check_drop_invalid_headers,
        remediation="drop_invalid_header_fields=True",
        url=DOCS,
    ),
    resource_policy(
        "alb-desync-mitigation",
        "ALBs mitigate HTTP desync [ELB.12]",
        LBS,
        check_desync,
        remediation="desync_mitigation_mode='strictest'",
        url=DOCS,
    ),
    resource_policy(
        "alb-access-logs",
        "Load balancers write access logs [ELB.5]",
        LBS,
        check_access_logs,
        remediation="access_logs={bucket, enabled: True}",
        url=DOCS,
    ),
    resource_policy(
        "alb-prod-deletion-protection",
        "Prod load balancers are deletion-protected [ELB.6]",
        LBS,
        check_prod_deletion_protection,
        remediation="enable_deletion_protection=True in prod",
        url=DOCS,
    ),
    stack_policy(
        "alb-waf-association",
        "Every internet-facing ALB has a WAF web ACL [ELB.16]",
        check_waf_association,
        remediation="aws.wafv2.WebAclAssociation(resource_arn=alb.arn, web_acl_arn=acl.arn)",
        url=DOCS,
    ),
]
