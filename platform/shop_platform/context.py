"""What every component needs to know about the stack it is declared in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shop_platform.tags import Tagger

# How long `pulumi up` waits for ACM to issue a DNS-validated certificate. ACM issues one minutes after the
# validation record resolves publicly; the provider's default (75 minutes, terraform-provider-aws
# internal/service/acm/certificate_validation.go) mostly hides a new zone that its parent does not delegate
# yet. The offline plan lists that delegation as a prerequisite (tools.plan).
CERTIFICATE_VALIDATION_TIMEOUT: Final = "30m"


@dataclass(frozen=True, slots=True)
class StackContext:
    """Account, region and tags of the stack; the stack program builds it once and hands it down."""

    account_id: str
    region: str
    tags: Tagger
    prod: bool
    partition: str = "aws"

    def __post_init__(self) -> None:
        if not (self.account_id.isdigit() and len(self.account_id) == 12):
            raise ValueError(f"account_id must be 12 digits, got {self.account_id!r}")
