"""The shared card validation (services/kit/cards.py), used by orders before reserving and by payments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.kit.cards import Card, brand_of, fingerprint, luhn_ok

NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("4242424242424242", True),
        ("4000000000000002", True),
        ("4000000000009995", True),
        ("5555555555554444", True),
        ("378282246310005", True),
        ("4242424242424241", False),
        ("1234567812345678", False),
    ],
)
def test_luhn(number: str, ok: bool) -> None:
    assert luhn_ok(number) is ok


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3056930009020004", "unknown"),
    ],
)
def test_brand(number: str, brand: str) -> None:
    assert brand_of(number) == brand


def test_spaces_are_ignored_and_the_current_month_is_still_valid() -> None:
    card = Card(number="4242 4242 4242 4242", exp_month=NOW.month, exp_year=NOW.year, cvc="123")
    assert card.number == "4242424242424242"
    assert card.last4 == "4242"


def test_last_month_is_expired() -> None:
    year, month = (NOW.year, NOW.month - 1) if NOW.month > 1 else (NOW.year - 1, 12)
    with pytest.raises(ValidationError, match="expired"):
        Card(number="4242424242424242", exp_month=month, exp_year=year, cvc="123")


def test_errors_and_reprs_never_contain_the_number_or_cvc() -> None:
    """A validation error or a stray log of the model must not leak the card."""
    with pytest.raises(ValidationError) as info:
        Card(number="4242424242424241", exp_month=12, exp_year=2031, cvc="98765")
    assert "4242424242424241" not in str(info.value)
    assert "98765" not in str(info.value)
    card = Card(number="4242424242424242", exp_month=12, exp_year=2031, cvc="8537")
    for text in (repr(card), str(card), f"{card}"):
        assert "4242424242424242" not in text
        assert "8537" not in text


def test_fingerprint_is_keyed() -> None:
    assert fingerprint("k" * 32, "4242424242424242") == fingerprint("k" * 32, "4242424242424242")
    assert fingerprint("k" * 32, "4242424242424242") != fingerprint("j" * 32, "4242424242424242")
    assert len(fingerprint("k" * 32, "4242424242424242")) == 64
