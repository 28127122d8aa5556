"""Named errors of the catalogue: the store raises them, the kit's problem handler renders each as its
problem body (``kind`` and extension members fixed here, in one place), so no route translates them."""

from __future__ import annotations

from services.kit.errors import Conflict


class DuplicateSku(Conflict):
    """Another product already has this SKU (409)."""

    kind = "duplicate-sku"

    def __init__(self, sku: str) -> None:
        super().__init__(f"A product with sku {sku!r} already exists.", sku=sku)
        self.sku = sku


class StockBelowReserved(Conflict):
    """Stock on hand may not go below what open reservations hold (409)."""

    kind = "stock-below-reserved"

    def __init__(self, reserved: int) -> None:
        super().__init__(f"{reserved} units are reserved; stock on hand cannot go below that.", reserved=reserved)
        self.reserved = reserved
