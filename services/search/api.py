"""Public route: GET /api/v1/search."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.kit.errors import problem_responses
from services.search import query
from services.search.settings import Settings

router = APIRouter(prefix="/api/v1/search", tags=["search"])


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


@router.get("", summary="Search products by relevance (full text, prefix and typo tolerant)",
            responses=problem_responses(422))
async def search_products(
    request: Request,
    q: Annotated[str, Query(
        pattern=query.QUERY_PATTERN,
        description="Search text: 1..200 characters once surrounding whitespace is trimmed",
        examples=["laptop"],
    )],
    limit: Annotated[int, Query(ge=1, le=50, description="Maximum hits to return")] = 20,
    category: Annotated[str | None, Query(
        min_length=1, max_length=64, pattern=query.CATEGORY_PATTERN,
        description="Only products in this category (case-insensitive exact match)",
    )] = None,
) -> SearchResults:
    settings: Settings = request.app.state.settings
    hits, total = await query.search(request.app.state.pool, query.normalize(q), limit=limit,
                                     category=category, typo_threshold=settings.search_typo_threshold)
    return SearchResults(
        items=[SearchHit(product_id=h.product_id, name=h.name, price_cents=h.price_cents, currency=h.currency,
                         category=h.category, score=h.score) for h in hits],
        total=total,
    )
