"""The simulated card processor.

The well-known test numbers decline with their reasons; every other number that passed validation
(Luhn, expiry, CVC) is approved. Approving unknown valid numbers keeps the simulator useful for load
tests with varied cards; the declines are exactly the contract's test numbers, so a test can rely on them.
"""

from __future__ import annotations

from services.payments.contract import DeclineReason

_DECLINES: dict[str, DeclineReason] = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
}


def decide(number: str) -> DeclineReason | None:
    """``None`` when the charge is approved, else the decline reason. ``number`` is normalised digits."""
    return _DECLINES.get(number)
