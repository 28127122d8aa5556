"""Request and response bodies. Requests forbid unknown fields and constrain every value, so bad input is a
422 before any SQL runs (PostgreSQL text cannot hold NUL or lone surrogates: those are refused here)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def storable_text(value: str) -> str:
    """Refuse text PostgreSQL cannot store (NUL) or UTF-8 cannot encode (lone surrogates)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", examples=["SKU-1001"])]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable_text), AfterValidator(_not_blank)]
Description = Annotated[str, Field(max_length=5000), AfterValidator(storable_text)]
Category = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(storable_text), AfterValidator(_not_blank)]
# Integers in bodies are strict: "12" or 12.0 for a price is a client bug to report, not to guess at.
PriceCents = Annotated[int, Field(strict=True, ge=1, le=100_000_000_000, description="Unit price in minor units")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["EUR"])]
StockQuantity = Annotated[int, Field(strict=True, ge=0, le=1_000_000_000)]


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    description: Description = ""
    category: Category
    price_cents: PriceCents
    currency: Currency


class ProductPatch(BaseModel):
    """Partial update: only the fields present change. ``null`` is refused except for ``description``
    (where it clears the text)."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    price_cents: PriceCents | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ProductPatch:
        nulls = sorted(f for f in self.model_fields_set if f != "description" and getattr(self, f) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} may be omitted but not null")
        return self

    def changes(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in self.model_fields_set}
        if "description" in out and out["description"] is None:
            out["description"] = ""
        return out


class StockUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: StockQuantity


class Product(BaseModel):
    id: uuid.UUID
    sku: str
    name: str
    description: str
    category: str
    price_cents: int
    currency: str
    stock_on_hand: int
    stock_available: int
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    items: list[Product]
    next_cursor: str | None = Field(description="Opaque; pass it back as `cursor` for the next page")


class CategoryCount(BaseModel):
    name: str
    products: int = Field(ge=1, description="Live products in the category")


class CategoryList(BaseModel):
    items: list[CategoryCount] = Field(description="Every category with a live product, by name")
