"""The products change feed as search reads it: ``GET /internal/v1/changes?after=<seq>&limit=<n>``.

The shape is the products service's internal API (services/products/README.md); it is validated on
arrival so a malformed batch is an error the indexer retries, never half-applied data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.kit.http import ServiceClient


class FeedProduct(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    sku: str
    name: str
    description: str | None = None
    category: str
    price_cents: int = Field(ge=0)
    currency: str
    updated_at: datetime


class Change(BaseModel):
    model_config = ConfigDict(extra="ignore")

    seq: int = Field(gt=0)
    product_id: uuid.UUID
    op: Literal["upsert", "delete"]
    product: FeedProduct | None = None

    @model_validator(mode="after")
    def _upsert_has_product(self) -> Change:
        if self.op == "upsert" and (self.product is None or self.product.id != self.product_id):
            raise ValueError("an upsert carries the product it upserts")
        return self


class ChangeBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[Change]
    next_after: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ChangeBatch:
        seqs = [c.seq for c in self.items]
        if seqs != sorted(set(seqs)):
            raise ValueError("changes must come in strictly increasing seq order")
        if seqs and self.next_after < seqs[-1]:
            raise ValueError("next_after is behind the batch it closes")
        return self


class FeedError(RuntimeError):
    """The feed could not be read (products down, an error status, or a malformed body)."""


class ChangeFeed(Protocol):
    async def changes(self, after: int, limit: int) -> ChangeBatch: ...

    async def aclose(self) -> None: ...


class HttpChangeFeed:
    """Reads the feed from the products service with search's service credential."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def changes(self, after: int, limit: int) -> ChangeBatch:
        response = await self._client.request("GET", "/internal/v1/changes",
                                              params={"after": str(after), "limit": str(limit)})
        if response.status_code != 200:
            raise FeedError(f"products answered {response.status_code} to GET /internal/v1/changes")
        try:
            batch = ChangeBatch.model_validate_json(response.content)
        except ValidationError as exc:
            raise FeedError(f"malformed change batch: {exc.error_count()} errors") from exc
        if batch.items and batch.items[0].seq <= after:
            raise FeedError(f"the feed returned seq {batch.items[0].seq} for after={after}")
        return batch

    async def aclose(self) -> None:
        await self._client.aclose()
