"""Named errors of the catalogue: the store raises them, the kit's problem handler renders each as its
problem body (``kind`` and extension members fixed here, in one place), so no route translates them."""

from __future__ import annotations

from services.kit.errors import Problem


class DuplicateSku(Problem):
    """Another product already has this SKU (409)."""

    def __init__(self, sku: str) -> None:
        super().__init__(409, f"A product with sku {sku!r} already exists.", kind="duplicate-sku", sku=sku)
        self.sku = sku


class StockBelowReserved(Problem):
    """Stock on hand may not go below what open reservations hold (409)."""

    def __init__(self, reserved: int) -> None:
        super().__init__(409, f"{reserved} units are reserved; stock on hand cannot go below that.",
                         kind="stock-below-reserved", reserved=reserved)
        self.reserved = reserved
