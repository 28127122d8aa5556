"""The products change feed as search reads it: ``GET /internal/v1/changes?after=<seq>&limit=<n>``.

The models are products' contract (``services/products/contract.py``), validated on arrival, so a malformed
batch is an error the indexer retries, never half-applied data.
"""

from __future__ import annotations

from typing import Protocol

from services.kit.http import ServiceCallError
from services.products.contract import ChangePage, ProductsClient


class FeedError(RuntimeError):
    """The feed could not be read (products down, an error status, or a malformed body)."""


class ChangeFeed(Protocol):
    async def changes(self, after: int, limit: int) -> ChangePage: ...

    async def aclose(self) -> None: ...


class HttpChangeFeed:
    """Reads the feed from the products service with search's service credential."""

    def __init__(self, products: ProductsClient) -> None:
        self._products = products

    async def changes(self, after: int, limit: int) -> ChangePage:
        try:
            batch = await self._products.changes(after, limit)
        except ServiceCallError as exc:
            raise FeedError(f"GET /internal/v1/changes: {exc}") from exc
        if batch.items and batch.items[0].seq <= after:
            raise FeedError(f"the feed returned seq {batch.items[0].seq} for after={after}")
        return batch

    async def aclose(self) -> None:
        await self._products.aclose()
