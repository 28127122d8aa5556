"""Products settings: the kit's, plus the few knobs of this service (env vars are upper-case names)."""

from __future__ import annotations

from pydantic import Field

from services.kit.settings import KitSettings


class Settings(KitSettings):
    service_name: str = "products"
    change_feed_lock_key: int = Field(
        default=0x50_52_4F_44,
        ge=1,
        le=2**62,
        description="Advisory-lock key that serialises change-feed writers so feed order is commit order; any fixed "
        "value works, as long as every replica uses the same (the default, 0x50524F44, spells PROD).",
    )
