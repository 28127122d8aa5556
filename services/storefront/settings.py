"""Storefront settings (environment variables are the upper-case field names)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.kit.settings import KitSettings


class Settings(KitSettings):
    service_name: str = "storefront"

    api_url: str | None = Field(
        default=None,
        description="Base URL of the public API (the gateway). Unset: the gateway's address from "
        "SERVICE_URLS / SERVICE_URL_TEMPLATE, as for any other service.",
    )
    session_key: SecretStr = Field(
        min_length=32,
        description="Secret (at least 32 characters) the session cookie is encrypted and authenticated with "
        "(AES-256-GCM, key derived with HKDF). Rotating it logs every shopper out and empties their "
        "carts.",
    )
    cookie_secure: bool = Field(
        default=True,
        description="Mark the session cookie Secure (sent over HTTPS only) and give it the __Host- prefix. "
        "Only plain-HTTP tests turn it off.",
    )
    session_max_age_s: int = Field(
        default=30 * 24 * 3600,
        ge=300,
        le=90 * 24 * 3600,
        description="How long the browser keeps the session cookie (the cart lives in it). The tokens "
        "inside expire on their own terms.",
    )
    api_timeout_s: float = Field(
        default=20.0,
        gt=0,
        le=60,
        description="Timeout of one call to the API. Above the gateway's 15 s for orders, so a slow "
        "checkout ends with the gateway's answer rather than ours.",
    )
    page_size: int = Field(default=12, ge=1, le=100, description="Products per catalogue page.")
    cart_max_lines: int = Field(
        default=20,
        ge=1,
        le=50,
        description="Distinct products a cart may hold: the cart lives in the cookie, which browsers cap at 4 KiB.",
    )
