"""DNS components: zone, health check + alarm, maintenance site, failover records."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from shop_platform import versions
from shop_platform.config import EdgeConfig
from shop_platform.context import StackContext
from shop_platform.dns import ApiDns, ApiDnsArgs, Zone, ZoneArgs
from shop_platform.maintenance import maintenance_problem

from tests.platform.conftest import section
from tools.offline import Recording

ALB = "edge-alb-123.eu-west-1.elb.amazonaws.com"


def _api(ctx: StackContext, config: dict[str, object] | None = None, **over: object) -> Callable[[], object]:
    """The component's args; ``config`` overrides keys of the ``edge`` section (the environment's defaults)."""
    base: dict[str, object] = dict(
        ctx=ctx,
        api_domain="api.shop.example.com",
        zone_id="Z1",
        alb_dns_name=ALB,
        alb_zone_id="ZALB",
        config=section(EdgeConfig, ctx, **(config or {})),
    )
    base.update(over)
    return lambda: ApiDns("dns", ApiDnsArgs(**base))  # type: ignore[arg-type]


def test_zone_is_created_or_looked_up(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """Config chooses: a stack may own its zone or use one that already exists (e.g. delegated by IT)."""
    created = run(lambda: Zone("zone", ZoneArgs(ctx=dev_ctx, domain="shop.example.com", create=True)))
    assert created.one("aws:route53/zone:Zone").inputs["name"] == "shop.example.com"
    assert created.one("aws:route53/zone:Zone").inputs["forceDestroy"] is False
    assert created.one("aws:route53/zone:Zone").protect is False


def test_a_prod_zone_cannot_be_destroyed_by_pulumi(run: Callable[..., Recording], prod_ctx: StackContext) -> None:
    """Deleting the prod zone takes the domain off the internet until the registrar's NS are fixed again."""
    rec = run(lambda: Zone("zone", ZoneArgs(ctx=prod_ctx, domain="shop.example.com", create=True)), stack="prod")
    assert rec.one("aws:route53/zone:Zone").protect is True


def test_zone_lookup_declares_nothing(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """A zone owned elsewhere is only read: no zone, no query logging of someone else's zone."""
    looked_up = run(lambda: Zone("zone", ZoneArgs(ctx=dev_ctx, domain="shop.example.com", create=False)))
    assert not looked_up.of_type("aws:route53/zone:Zone")
    assert not looked_up.of_type("aws:route53/queryLog:QueryLog")


def test_a_created_zone_logs_dns_queries_in_us_east_1(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """FSBP Route53.2: query logs show who resolves what (reconnaissance, DNS abuse); Route 53 only delivers
    them to a log group in us-east-1, whose resource policy must let route53.amazonaws.com write."""
    rec = run(
        lambda: Zone("zone", ZoneArgs(ctx=dev_ctx, domain="shop.example.com", create=True, query_log_retention_days=30))
    )
    group = rec.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"] == "/aws/route53/shop.example.com"
    assert group.inputs["region"] == "us-east-1"
    assert group.inputs["retentionInDays"] == 30
    query_log = rec.one("aws:route53/queryLog:QueryLog")
    assert query_log.inputs["cloudwatchLogGroupArn"] == group.outputs["arn"]
    policy = json.loads(rec.one("aws:cloudwatch/logResourcePolicy:LogResourcePolicy").inputs["policyDocument"])
    assert policy["Statement"][0]["Principal"] == {"Service": "route53.amazonaws.com"}
    assert group.outputs["arn"].startswith(policy["Statement"][0]["Resource"].rstrip("*"))


def test_health_check_probes_the_alb_healthz_over_https(run: Callable[..., Recording], dev_ctx: StackContext) -> None:
    """The check must follow the real entry path (TLS on the ALB) and target the ALB, not the failover name."""
    check = run(_api(dev_ctx)).one("aws:route53/healthCheck:HealthCheck").inputs
    assert (check["type"], check["fqdn"], check["port"], check["resourcePath"]) == ("HTTPS", ALB, 443, "/healthz")
    assert check["failureThreshold"] == 3


def test_alarm_watches_the_health_check_in_us_east_1_and_notifies_an_encrypted_topic(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """Route 53 publishes health-check metrics only in us-east-1; an alarm elsewhere would never fire."""
    rec = run(_api(dev_ctx, config={"alertEmail": "oncall@example.com"}))
    alarm = rec.one("aws:cloudwatch/metricAlarm:MetricAlarm").inputs
    check = rec.one("aws:route53/healthCheck:HealthCheck")
    topic = rec.one("aws:sns/topic:Topic")
    assert alarm["region"] == "us-east-1"
    assert (alarm["namespace"], alarm["metricName"]) == ("AWS/Route53", "HealthCheckStatus")
    assert alarm["dimensions"] == {"HealthCheckId": check.id}
    assert alarm["alarmActions"] == [topic.outputs["arn"]]
    assert topic.inputs["region"] == "us-east-1"
    assert topic.inputs["kmsMasterKeyId"].startswith("arn:aws:kms:us-east-1:")
    key = next(k for k in rec.of_type("aws:kms/key:Key") if k.outputs["arn"] == topic.inputs["kmsMasterKeyId"])
    assert "cloudwatch.amazonaws.com" in key.inputs["policy"]  # else the alarm cannot publish (encrypted topic)
    assert rec.one("aws:sns/topicPolicy:TopicPolicy").inputs["arn"] == topic.outputs["arn"]
    assert rec.one("aws:sns/topicSubscription:TopicSubscription").inputs["endpoint"] == "oncall@example.com"
    assert not run(_api(dev_ctx)).of_type("aws:sns/topicSubscription:TopicSubscription")


def test_maintenance_site_answers_503_problem_json_with_its_own_us_east_1_certificate(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """While the primary is down clients get a clear RFC 9457 answer and Retry-After, not a timeout;
    CloudFront only accepts us-east-1 certificates."""
    rec = run(_api(dev_ctx))
    cert = rec.one("aws:acm/certificate:Certificate")
    assert cert.inputs["region"] == "us-east-1"
    assert cert.inputs["domainName"] == "api.shop.example.com"
    cdn = rec.one("aws:cloudfront/distribution:Distribution").inputs
    assert cdn["aliases"] == ["api.shop.example.com"]
    assert cdn["viewerCertificate"]["minimumProtocolVersion"] == versions.CLOUDFRONT_MIN_PROTOCOL
    assert cdn["defaultCacheBehavior"]["viewerProtocolPolicy"] == "redirect-to-https"
    errors = {e["errorCode"]: e for e in cdn["customErrorResponses"]}
    assert set(errors) == {403, 404, 405}
    assert all(e["responseCode"] == 503 for e in errors.values())
    obj = rec.one("aws:s3/bucketObjectv2:BucketObjectv2").inputs
    assert errors[403]["responsePagePath"] == "/" + obj["key"]
    assert obj["contentType"] == "application/problem+json"
    body = json.loads(obj["content"])
    assert body == maintenance_problem("api.shop.example.com")
    assert body["status"] == 503
    headers = rec.one("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy").inputs
    assert headers["customHeadersConfig"]["items"][0]["header"] == "Retry-After"


def test_maintenance_bucket_is_readable_only_by_cloudfront(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """Origin Access Control: the bucket stays private; only this site's distribution may read it."""
    rec = run(_api(dev_ctx))
    policy = json.loads(rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    grant = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert grant["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    distribution = rec.one("aws:cloudfront/distribution:Distribution").outputs["arn"]
    assert grant["Condition"] == {"StringEquals": {"AWS:SourceArn": distribution}}
    assert rec.one("aws:cloudfront/originAccessControl:OriginAccessControl").inputs["signingBehavior"] == "always"


def test_failover_pair_primary_alb_with_check_secondary_maintenance(
    run: Callable[..., Recording], dev_ctx: StackContext
) -> None:
    """The pair is what turns an outage into a 503 answer: PRIMARY health-checked ALB, SECONDARY CDN."""
    rec = run(_api(dev_ctx))
    records = {r.inputs.get("setIdentifier"): r.inputs for r in rec.of_type("aws:route53/record:Record")}
    assert records["primary"]["healthCheckId"] == rec.one("aws:route53/healthCheck:HealthCheck").id
    assert records["primary"]["aliases"][0]["name"] == ALB
    assert (
        records["secondary"]["aliases"][0]["name"]
        == rec.one("aws:cloudfront/distribution:Distribution").outputs["domainName"]
    )
    assert "healthCheckId" not in records["secondary"]


def test_health_check_interval_must_be_one_route53_supports(dev_ctx: StackContext) -> None:
    """Route 53 accepts 10 or 30 seconds; anything else fails at apply time."""
    with pytest.raises(ValueError, match="10 or 30"):
        ApiDnsArgs(
            ctx=dev_ctx,
            api_domain="api.x.com",
            zone_id="Z",
            alb_dns_name="a",
            alb_zone_id="b",
            config=section(EdgeConfig, dev_ctx),
            request_interval=15,
        )
