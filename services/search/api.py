"""Public route: GET /api/v1/search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.kit.deps import PoolDep
from services.kit.errors import problem_responses
from services.search import store
from services.search.deps import SettingsDep
from services.search.models import SearchHit, SearchResults

router = APIRouter(prefix="/api/v1/search", tags=["search"])


@router.get(
    "", summary="Search products by relevance (full text, prefix and typo tolerant)", responses=problem_responses(422)
)
async def search_products(
    pool: PoolDep,
    settings: SettingsDep,
    q: Annotated[
        str,
        Query(
            pattern=store.QUERY_PATTERN,
            description="Search text: 1..200 characters once surrounding whitespace is trimmed",
            examples=["laptop"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=50, description="Maximum hits to return")] = 20,
    category: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            pattern=store.CATEGORY_PATTERN,
            description="Only products in this category (case-insensitive exact match)",
        ),
    ] = None,
) -> SearchResults:
    hits, total = await store.search(
        pool, store.normalize(q), limit=limit, category=category, typo_threshold=settings.search_typo_threshold
    )
    return SearchResults(
        items=[
            SearchHit(
                product_id=h.product_id,
                name=h.name,
                price_cents=h.price_cents,
                currency=h.currency,
                category=h.category,
                score=h.score,
            )
            for h in hits
        ],
        total=total,
    )
