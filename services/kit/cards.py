"""Card validation shared by orders (before it reserves stock) and payments (before it charges).

Pure code, no I/O: the pydantic :class:`Card` model checks the number (digits, spaces ignored, Luhn),
the expiry (four-digit year, month 1..12, not in the past) and the CVC (3-4 digits). Error messages
never contain the input, and ``hide_input_in_errors`` keeps pydantic from echoing it either, so a
card number cannot leak through a 422 body or a log line of a validation error.

:func:`fingerprint` is the keyed HMAC-SHA256 of the number: it lets payments recognise the same card
again without storing it (a plain hash of a 16-digit number with a known prefix is brute-forced in
minutes; a keyed one is not without the key).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MIN_FINGERPRINT_KEY_CHARS = 32


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def brand_of(number: str) -> str:
    """The card network from the leading digits (IIN ranges); ``unknown`` when none matches."""
    if number.startswith("4"):
        return "visa"
    two, four = int(number[:2]), int(number[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if number.startswith("6011") or number.startswith("65") or 644 <= int(number[:3]) <= 649:
        return "discover"
    return "unknown"


def fingerprint(key: str, number: str) -> str:
    """Keyed fingerprint of a (normalised) card number: hex HMAC-SHA256."""
    return hmac.new(key.encode(), number.encode(), hashlib.sha256).hexdigest()


class Card(BaseModel):
    """A payment card as a client sends it. ``number`` is normalised (spaces removed) after validation."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    number: Annotated[
        str, Field(min_length=12, max_length=30, repr=False, description="12-19 digits; spaces are ignored")
    ]
    exp_month: Annotated[int, Field(strict=True, ge=1, le=12)]
    exp_year: Annotated[int, Field(strict=True, ge=1000, le=9999, description="four digits")]
    cvc: Annotated[str, Field(pattern=r"^[0-9]{3,4}$", repr=False, description="3 or 4 digits")]

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        digits = value.replace(" ", "")
        if not digits.isascii() or not digits.isdigit() or not 12 <= len(digits) <= 19:
            raise ValueError("the card number must be 12-19 digits (spaces allowed)")
        if not luhn_ok(digits):
            raise ValueError("the card number fails the Luhn check")
        return digits

    @model_validator(mode="after")
    def _not_expired(self) -> Card:
        now = datetime.now(UTC)
        if (self.exp_year, self.exp_month) < (now.year, now.month):
            raise ValueError("the card has expired")
        return self

    @property
    def brand(self) -> str:
        return brand_of(self.number)

    @property
    def last4(self) -> str:
        return self.number[-4:]

    def __repr__(self) -> str:  # never the number or CVC, whatever pydantic's repr does
        return f"Card(brand={self.brand!r}, last4={self.last4!r}, exp={self.exp_month:02d}/{self.exp_year})"

    __str__ = __repr__
