"""Orders settings: the kit's, plus outbound timeouts, the recovery loop and idempotency retention."""

from __future__ import annotations

from pydantic import Field, model_validator

from services.kit.settings import KitSettings


class Settings(KitSettings):
    service_name: str = "orders"
    products_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=30,
        description="Seconds each call to the products service may take. A saga makes at most a handful of calls, "
        "so its worst case stays well below the gateway's 15 s for orders.",
    )
    payments_timeout_s: float = Field(
        default=4.0, gt=0, le=30, description="Seconds each call to the payments service may take."
    )
    peer_max_connections: int = Field(
        default=100, ge=1, le=1000, description="Connections to each peer service, per process."
    )
    recovery_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds between rounds of the recovery loop, which finishes or compensates stuck orders (one "
        "replica at a time: pg_advisory_lock).",
    )
    recovery_stuck_after_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds an order may sit untouched in pending, reserved, paid or cancelling before recovery "
        "takes it over; must exceed the worst-case saga (3 calls to each peer at its timeout).",
    )
    recovery_settle_after_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds after it failed that a failed order is re-checked once (the settle pass): long enough "
        "for a request given up on to have reached its peer, so more than every outbound timeout.",
    )
    recovery_batch: int = Field(default=100, ge=1, le=1000, description="Orders recovered per round, at most.")
    idempotency_retention_s: float = Field(
        default=48 * 3600.0,
        ge=24 * 3600.0,
        description="Seconds an Idempotency-Key with its final answer is kept (48 h; the API promises at least "
        "24 h), then pruned.",
    )

    @model_validator(mode="after")
    def _stuck_after_exceeds_a_saga(self) -> Settings:
        # A live saga must never look stuck: it makes at most ~6 calls, each bounded by its timeout.
        worst = 3 * self.products_timeout_s + 3 * self.payments_timeout_s
        if self.recovery_stuck_after_s <= worst:
            raise ValueError(f"RECOVERY_STUCK_AFTER_S must exceed the worst-case saga time ({worst:.1f} s)")
        if self.recovery_settle_after_s <= max(self.products_timeout_s, self.payments_timeout_s):
            raise ValueError("RECOVERY_SETTLE_AFTER_S must exceed every outbound timeout")
        return self
