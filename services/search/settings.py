"""Search service settings (environment variables are the upper-case field names)."""

from __future__ import annotations

from pydantic import Field

from services.kit.settings import KitSettings


class Settings(KitSettings):
    service_name: str = "search"

    indexer_enabled: bool = Field(
        default=True,
        description="Whether this process runs the indexer that follows the products change feed "
        "(GET /internal/v1/changes). Replicas may all run it: batches are applied once.",
    )
    indexer_poll_interval_s: float = Field(
        default=0.2,
        gt=0,
        le=10,
        description="Seconds the indexer waits when the feed has nothing new. Changes must be searchable within "
        "2 s, so this stays well below that; a full batch is followed at once by the next request.",
    )
    indexer_batch_size: int = Field(
        default=500, ge=1, le=1000, description="Changes asked for per feed request (products serves at most 1000)."
    )
    indexer_backoff_max_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Longest wait after an error (products down, a bad batch): the wait doubles from the poll "
        "interval up to this.",
    )
    indexer_feed_timeout_s: float = Field(
        default=3.0, gt=0, le=30, description="Seconds one feed request to products may take."
    )
    search_typo_threshold: float = Field(
        default=0.5,
        ge=0.1,
        le=1.0,
        description="Typo tolerance: the least pg_trgm word_similarity between the query and a product name for "
        "the name to match. 0.5 lets one transposition in a 6-letter word through ('laptpo' to "
        "'laptop' is 0.57) without matching unrelated names.",
    )
