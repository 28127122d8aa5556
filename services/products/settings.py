"""Products settings: the kit's, plus the few knobs of this service (env vars are upper-case names)."""

from __future__ import annotations

from pydantic import Field

from services.kit.settings import KitSettings


class Settings(KitSettings):
    service_name: str = "products"
    # Advisory-lock key that serialises change-feed writers (one per database; any fixed value works).
    change_feed_lock_key: int = Field(default=0x50_52_4F_44, ge=1, le=2**62)
