"""Search service settings (environment variables are the upper-case field names)."""

from __future__ import annotations

from pydantic import Field

from services.kit.settings import KitSettings


class Settings(KitSettings):
    service_name: str = "search"

    # The indexer that follows GET /internal/v1/changes on the products service.
    indexer_enabled: bool = True
    # Idle poll interval. The contract promises changes are searchable within 2 s, so this stays well
    # below that; a full batch is followed at once by the next request.
    indexer_poll_interval_s: float = Field(default=0.2, gt=0, le=10)
    indexer_batch_size: int = Field(default=500, ge=1, le=1000)
    # Back-off after an error (products down, a bad batch): doubles from the poll interval up to this.
    indexer_backoff_max_s: float = Field(default=2.0, gt=0, le=60)
    indexer_feed_timeout_s: float = Field(default=3.0, gt=0, le=30)

    # Typo tolerance: the minimum pg_trgm word_similarity between the query and a product name for the
    # name to count as a (fuzzy) match. 0.5 lets one transposition in a 6-letter word through
    # ("laptpo" -> "laptop" is 0.57) without matching unrelated names.
    search_typo_threshold: float = Field(default=0.5, ge=0.1, le=1.0)
