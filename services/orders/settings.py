"""Orders settings: the kit's, plus outbound timeouts, the recovery loop and idempotency retention."""

from __future__ import annotations

from pydantic import Field, model_validator

from services.kit.settings import KitSettings


class Settings(KitSettings):
    service_name: str = "orders"
    # Every outbound call has a timeout (seconds). A saga makes at most a handful of calls, so its worst
    # case is bounded well below the gateway's 15 s for orders.
    products_timeout_s: float = Field(default=3.0, gt=0, le=30)
    payments_timeout_s: float = Field(default=4.0, gt=0, le=30)
    peer_max_connections: int = Field(default=100, ge=1, le=1000)  # per peer
    # Recovery: every interval, orders untouched for stuck_after seconds in pending/reserved/paid/cancelling
    # are finished or compensated (one replica at a time: pg_advisory_lock).
    recovery_interval_s: float = Field(default=5.0, gt=0, le=3600)
    recovery_stuck_after_s: float = Field(default=30.0, gt=0)
    # A failed order is re-checked once (the settle pass) this long after it failed: long enough for a
    # request we gave up on to have reached its peer (more than any outbound timeout).
    recovery_settle_after_s: float = Field(default=30.0, gt=0)
    recovery_batch: int = Field(default=100, ge=1, le=1000)
    idempotency_retention_s: float = Field(default=48 * 3600.0, ge=24 * 3600.0)

    @model_validator(mode="after")
    def _stuck_after_exceeds_a_saga(self) -> Settings:
        # A live saga must never look stuck: it makes at most ~6 calls, each bounded by its timeout.
        worst = 3 * self.products_timeout_s + 3 * self.payments_timeout_s
        if self.recovery_stuck_after_s <= worst:
            raise ValueError(f"RECOVERY_STUCK_AFTER_S must exceed the worst-case saga time ({worst:.1f} s)")
        if self.recovery_settle_after_s <= max(self.products_timeout_s, self.payments_timeout_s):
            raise ValueError("RECOVERY_SETTLE_AFTER_S must exceed every outbound timeout")
        return self
