"""Edge component: certificate, ALB, access logs, WAF, and the path to NGINX Gateway."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from shop_platform import versions
from shop_platform.config import ConfigError, EdgeConfig
from shop_platform.context import StackContext
from shop_platform.edge import Edge, EdgeArgs

from tests.platform.conftest import section
from tools.offline import Recording


def _args(ctx: StackContext, config: dict[str, object] | None = None, **over: object) -> EdgeArgs:
    """The component's args; ``config`` overrides keys of the ``edge`` section (the environment's defaults)."""
    base: dict[str, object] = dict(
        ctx=ctx,
        api_domain="api.shop.example.com",
        zone_id="Z1",
        vpc_id="vpc-1",
        public_subnet_ids=["pub-a", "pub-b"],
        cluster_security_group_id="sg-cluster",
        oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/x",
        oidc_issuer="https://oidc.example/id/X",
        config=section(EdgeConfig, ctx, **(config or {})),
    )
    base.update(over)
    return EdgeArgs(**base)  # type: ignore[arg-type]


def _run(
    run: Callable[..., Recording], ctx: StackContext, config: dict[str, object] | None = None, **over: object
) -> Recording:
    return run(lambda: Edge("edge", _args(ctx, config, **over)))


def test_http_only_redirects_and_https_uses_the_modern_policy(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """FSBP ELB.1/ELB.17: no plaintext API traffic and no TLS 1.0/1.1."""
    rec = _run(run, dev_ctx)
    listeners = {li.inputs["port"]: li for li in rec.of_type("aws:lb/listener:Listener")}
    assert set(listeners) == {80, 443}
    redirect = listeners[80].inputs["defaultActions"][0]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"]["protocol"] == "HTTPS"
    assert redirect["redirect"]["statusCode"] == "HTTP_301"
    https = listeners[443].inputs
    assert https["sslPolicy"] == versions.ALB_SSL_POLICY
    assert https["certificateArn"] == rec.one("aws:acm/certificate:Certificate").outputs["arn"]
    assert https["defaultActions"][0]["targetGroupArn"] == rec.one("aws:lb/targetGroup:TargetGroup").outputs["arn"]
    assert https["routingHttpResponseStrictTransportSecurityHeaderValue"].startswith("max-age=")


def test_certificate_is_validated_through_route53(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """DNS validation in our own zone means the certificate renews without anyone clicking an e-mail."""
    rec = _run(run, dev_ctx)
    cert = rec.one("aws:acm/certificate:Certificate")
    assert cert.inputs["validationMethod"] == "DNS"
    record = rec.one("aws:route53/record:Record")
    assert record.inputs["zoneId"] == "Z1"
    assert record.inputs["name"] == cert.outputs["domainValidationOptions"][0]["resourceRecordName"]


def test_alb_drops_invalid_headers_logs_and_is_protected_in_prod(
    run: Callable[..., Recording], dev_ctx: StackContext, prod_ctx: StackContext
) -> None:
    """FSBP ELB.4/5/6/12: request smuggling defences, an audit trail, no accidental deletion in prod."""
    alb = _run(run, dev_ctx).one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["dropInvalidHeaderFields"] is True
    assert alb["desyncMitigationMode"] == "strictest"
    assert alb["accessLogs"]["enabled"] is True
    assert alb["internal"] is False
    assert alb["subnets"] == ["pub-a", "pub-b"]
    assert alb["enableDeletionProtection"] is False
    prod = _run(run, prod_ctx).one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert prod["enableDeletionProtection"] is True


def test_access_log_bucket_is_private_encrypted_and_writable_only_by_elb(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """Access logs hold client IPs and paths; ALB delivery supports SSE-S3 only, so that is what is used."""
    rec = _run(run, dev_ctx)
    sse = rec.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    policy = json.loads(rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    sids = {s["Sid"]: s for s in policy["Statement"]}
    assert sids["DenyInsecureTransport"]["Effect"] == "Deny"
    grant = sids["AlbAccessLogs"]
    assert grant["Action"] == "s3:PutObject"
    assert grant["Resource"].endswith("/alb/AWSLogs/111122223333/*")
    bucket = rec.one("aws:s3/bucket:Bucket")
    assert rec.one("aws:lb/loadBalancer:LoadBalancer").inputs["accessLogs"]["bucket"] == bucket.outputs["bucket"]


def test_traffic_reaches_gateway_pods_through_an_ip_target_group(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """TargetGroupBinding registers gateway pods directly; health checks follow the API's liveness route."""
    rec = _run(run, dev_ctx, gateway_port=8080)
    tg = rec.one("aws:lb/targetGroup:TargetGroup").inputs
    assert tg["targetType"] == "ip"
    assert tg["port"] == 8080
    assert tg["healthCheck"]["path"] == "/healthz"
    into_cluster = rec.named("edge-cluster-from-alb-8080").inputs
    assert into_cluster["securityGroupId"] == "sg-cluster"
    assert (into_cluster["fromPort"], into_cluster["toPort"]) == (8080, 8080)
    alb_sg = rec.one("aws:ec2/securityGroup:SecurityGroup")
    assert into_cluster["referencedSecurityGroupId"] == alb_sg.id
    egress = rec.one("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule").inputs
    assert egress["referencedSecurityGroupId"] == "sg-cluster"


def test_web_acl_has_managed_groups_rate_rules_and_redacted_logging(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """FSBP WAF.10/11/12 with the stricter login limit from config; tokens never reach the WAF logs."""
    rec = _run(run, dev_ctx, config={"rateLimitPer5Min": 3000, "loginRateLimitPer5Min": 50})
    acl = rec.one("aws:wafv2/webAcl:WebAcl")
    assert acl.inputs["scope"] == "REGIONAL"
    assert "ruleJson" not in acl.inputs  # rule_json gets no drift detection
    rules = {r["name"]: r for r in acl.inputs["rules"]}
    assert rules["rate-per-ip"]["statement"]["rateBasedStatement"]["limit"] == 3000
    assert rules["rate-login"]["statement"]["rateBasedStatement"]["limit"] == 50
    assert rules["rate-login"]["action"]["block"]["customResponse"]["responseCode"] == 429
    assert len([n for n in rules if n.startswith("AWSManagedRules")]) == 4
    logging = rec.one("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration").inputs
    assert {"singleHeader": {"name": "authorization"}} in logging["redactedFields"]
    group = rec.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"].startswith("aws-waf-logs-")
    assert logging["logDestinationConfigs"] == [group.outputs["arn"]]
    delivery = rec.one("aws:cloudwatch/logResourcePolicy:LogResourcePolicy")
    assert group.outputs["arn"] in delivery.inputs["policyDocument"]
    assert delivery.urn in rec.one("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration").deps
    assoc = rec.one("aws:wafv2/webAclAssociation:WebAclAssociation").inputs
    assert assoc["resourceArn"] == rec.one("aws:lb/loadBalancer:LoadBalancer").outputs["arn"]


def test_load_balancer_controller_role_is_scoped_to_the_target_group(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """The controller can only (de)register targets on our target group, never build load balancers."""
    rec = _run(run, dev_ctx)
    doc = json.loads(rec.named("edge-lb-controller-role-policy").inputs["policy"])
    scoped = [s for s in doc["Statement"] if s["Resource"] != "*"]
    assert [s["Resource"] for s in scoped] == [rec.one("aws:lb/targetGroup:TargetGroup").outputs["arn"]]


def test_edge_args_refuse_one_az_and_a_lax_login_limit(dev_ctx: StackContext) -> None:
    """An ALB needs two AZs; a login limit that is not stricter is protection in name only (the ``edge`` section
    the args take refuses it)."""
    with pytest.raises(ValueError, match="2 AZs"):
        _args(dev_ctx, public_subnet_ids=["pub-a"])
    with pytest.raises(ConfigError, match="stricter"):
        _args(dev_ctx, config={"loginRateLimitPer5Min": 5000})
