"""What every component needs to know about the stack it is declared in."""

from __future__ import annotations

from dataclasses import dataclass

from shop_platform.tags import Tagger


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
