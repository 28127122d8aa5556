"""Payments: a simulated card processor with idempotent charges and refunds and a double-entry ledger;
it stores a card's brand, last four digits, expiry and a keyed fingerprint, never its number."""
