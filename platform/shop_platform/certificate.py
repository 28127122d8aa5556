"""An ACM certificate validated by DNS: the certificate, its validation record in the zone, and the wait for issuance.

Used by the edge (the ALB's certificate, in the stack's region) and the maintenance site (CloudFront takes
certificates from us-east-1 only). ACM gives a name the same validation CNAME in every region, so both
certificates of ``api.<domain>`` write one record (``allow_overwrite``). The wait is bounded by
``CERTIFICATE_VALIDATION_TIMEOUT`` (see ``context``): a zone its parent does not delegate fails the ``up``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from shop_platform.context import CERTIFICATE_VALIDATION_TIMEOUT


@dataclass(frozen=True, slots=True)
class DnsValidatedCertificateArgs:
    domain: str
    zone_id: pulumi.Input[str]
    # None: the stack's region (the default AWS provider's); CloudFront needs "us-east-1".
    region: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.domain or self.domain.startswith(".") or "." not in self.domain:
            raise ValueError(f"DnsValidatedCertificateArgs: {self.domain!r} is not a fully qualified domain name")


class DnsValidatedCertificate(pulumi.ComponentResource):
    """``certificate_arn`` resolves once ACM has issued the certificate: a listener or distribution that uses it
    never points at a certificate still pending validation."""

    certificate_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: DnsValidatedCertificateArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("shop:acm:DnsValidatedCertificate", name, None, opts)
        # The children keep the URNs they have as direct children of the component that declares this one, so
        # a stack deployed before this component existed keeps its certificate instead of replacing it.
        child = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=opts.parent if opts else None)])
        cert = aws.acm.Certificate(
            name, domain_name=args.domain, validation_method="DNS", region=args.region, tags=dict(args.tags), opts=child
        )
        option = cert.domain_validation_options.apply(lambda o: o[0])
        record = aws.route53.Record(
            f"{name}-validation",
            zone_id=args.zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=300,
            # ACM uses the same CNAME for a name in every region: the edge's and the maintenance site's share it.
            allow_overwrite=True,
            opts=child,
        )
        validated = aws.acm.CertificateValidation(
            f"{name}-validated",
            certificate_arn=cert.arn,
            validation_record_fqdns=[record.fqdn],
            region=args.region,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=CERTIFICATE_VALIDATION_TIMEOUT)),
            ),
        )
        self.certificate_arn = validated.certificate_arn
        self.register_outputs({"certificateArn": self.certificate_arn})
