"""DnsValidatedCertificate: one certificate, its validation record and the bounded wait, in one region."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from shop_platform.certificate import DnsValidatedCertificate, DnsValidatedCertificateArgs
from shop_platform.context import CERTIFICATE_VALIDATION_TIMEOUT

from tools.offline import Recording
from tools.plan import PlanResult

CERT = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"


@pytest.mark.parametrize("region", [None, "us-east-1"])
def test_the_certificate_and_its_validation_are_in_the_region_asked_and_the_wait_is_bounded(
    run: Callable[..., Recording], region: str | None
) -> None:
    """ACM issues a certificate in one region and CertificateValidation must wait in that same region; the
    record goes to the zone that proves the name, and the wait gives up before the provider's 75 minutes."""
    arns: list[str] = []

    def program() -> None:
        cert = DnsValidatedCertificate(
            "api-cert",
            DnsValidatedCertificateArgs(
                domain="api.shop.example.com", zone_id="ZONE123", region=region, tags={"stack": "dev"}
            ),
        )
        cert.certificate_arn.apply(arns.append)

    rec = run(program)
    cert, validation, record = rec.one(CERT), rec.one(VALIDATION), rec.one(RECORD)
    assert cert.inputs.get("region") == region
    assert validation.inputs.get("region") == region
    assert cert.inputs["domainName"] == "api.shop.example.com"
    assert cert.inputs["validationMethod"] == "DNS"
    assert record.inputs["zoneId"] == "ZONE123"
    assert record.inputs["allowOverwrite"] is True  # the other region's certificate writes the same CNAME
    assert validation.inputs["certificateArn"] == cert.outputs["arn"]
    assert validation.custom_timeouts == {"create": CERTIFICATE_VALIDATION_TIMEOUT}
    assert arns == [cert.outputs["arn"]]  # what listeners use: the validated certificate's ARN


@pytest.mark.parametrize("domain", ["", "localhost", ".example.com"])
def test_a_name_that_is_not_fully_qualified_is_refused(domain: str) -> None:
    with pytest.raises(ValueError, match="not a fully qualified domain name"):
        DnsValidatedCertificateArgs(domain=domain, zone_id="Z")


def test_the_edge_and_maintenance_certificates_keep_their_urns_as_children_of_their_component(plan: PlanResult) -> None:
    """Each child aliases the component that declares the certificate (Edge, MaintenanceSite): a stack that holds
    these resources directly under that component keeps its certificates instead of replacing them."""
    rec = plan.recording
    by_urn = rec.by_urn()
    components = rec.of_type("shop:acm:DnsValidatedCertificate")
    assert sorted(by_urn[c.parent or ""].type for c in components) == [
        "shop:edge:Edge",
        "shop:maintenance:MaintenanceSite",
    ]
    for component in components:
        children = [r for r in rec.resources if r.parent == component.urn]
        assert sorted(r.type for r in children) == [CERT, VALIDATION, RECORD]
        assert all(r.alias_parents == (component.parent,) for r in children), component.name
        # CloudFront takes us-east-1 certificates only; the ALB's is in the stack's region (no region input).
        expected = "us-east-1" if by_urn[component.parent or ""].type == "shop:maintenance:MaintenanceSite" else None
        assert {r.inputs.get("region") for r in children if r.type != RECORD} == {expected}, component.name


def test_every_aws_resource_goes_through_the_stacks_default_provider(plan: PlanResult) -> None:
    """No component carries an AWS provider of its own: the default provider reads aws:region from the stack, and
    a resource elsewhere (us-east-1 for CloudFront) says so with its own ``region`` input (pulumi-aws v7)."""
    aws = [r for r in plan.recording.resources if r.type.startswith("aws:")]
    assert aws
    assert [r.name for r in aws if r.provider is not None] == []
