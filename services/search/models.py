"""Response bodies of the search API."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: uuid.UUID
    name: str
    price_cents: int = Field(ge=0)
    currency: str
    category: str
    score: float = Field(ge=0, description="Relevance: higher is better; comparable within one response")


class SearchResults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[SearchHit]
    total: int = Field(ge=0, description="How many products match (items holds at most `limit` of them)")
