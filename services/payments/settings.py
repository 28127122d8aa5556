"""Payments settings: the kit's, plus the card fingerprint key and the idempotency-key retention."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from services.kit.cards import MIN_FINGERPRINT_KEY_CHARS
from services.kit.settings import KitSettings


class Settings(KitSettings):
    service_name: str = "payments"
    card_fingerprint_key: SecretStr = Field(
        description="HMAC key for card fingerprints and for hashing idempotent request bodies (which hold card "
        f"numbers), at least {MIN_FINGERPRINT_KEY_CHARS} characters. Provisioned per deployment like the "
        "signing keys (services/deploy/keyring.py); without it the service refuses to start."
    )
    idempotency_retention_s: float = Field(
        default=48 * 3600.0,
        ge=24 * 3600.0,
        description="Seconds an Idempotency-Key is kept (48 h; at least 24 h, as Stripe keeps them), then pruned.",
    )
    idempotency_stale_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds after which an in-flight key whose request never finished (the process died "
        "mid-request) may be taken over: the charge is one transaction, so nothing half-done stands "
        "behind it.",
    )
    prune_interval_s: float = Field(default=3600.0, gt=0, description="Seconds between prunes of expired keys.")

    @field_validator("card_fingerprint_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().strip()) < MIN_FINGERPRINT_KEY_CHARS:
            raise ValueError(
                f"CARD_FINGERPRINT_KEY must be at least {MIN_FINGERPRINT_KEY_CHARS} characters "
                "(provision it: services/deploy/keyring.py)"
            )
        return value
