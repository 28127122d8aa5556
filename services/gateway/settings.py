"""Gateway settings: the kit's, plus rate limits, trusted proxies, retries and the circuit breaker."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from services import catalog
from services.kit.client_address import TrustedProxies
from services.kit.http import service_url
from services.kit.settings import KitSettings


def _default_state_path() -> Path:
    """`/dev/shm/retail-gateway-<uid>/ratelimit.bin`, or the same under the temporary directory without /dev/shm"""
    # tmpfs, so the table is memory shared by the workers through mmap. The directory is per user and
    # checked (owner, mode 0700, no symlinks) when the table is opened: see ratelimit.SharedTokenBuckets.
    shm = Path("/dev/shm")  # noqa: S108
    base = shm if shm.is_dir() else Path(tempfile.gettempdir())
    return base / f"retail-gateway-{os.getuid()}" / "ratelimit.bin"


def _routed_services() -> list[str]:
    """every catalog service with public prefixes"""
    return [s.name for s in catalog.SERVICES if s.public_prefixes]


class Settings(KitSettings):
    service_name: str = "gateway"

    upstreams: Annotated[list[str], NoDecode] = Field(
        default_factory=_routed_services,
        description="The catalog services this deployment routes to, comma-separated. A public prefix of a service "
        "not listed answers 404, and /readyz/upstreams does not check it.",
    )
    trusted_proxies: TrustedProxies = Field(
        default_factory=list,
        description="Networks (CIDRs, comma-separated or a JSON list) whose X-Forwarded-For is believed; from any "
        "other peer the client address is the peer's. Empty: no proxy is trusted.",
    )

    # Token buckets: a steady rate (tokens per second) and a burst (bucket size), per scope.
    rate_limit_enabled: bool = Field(default=True, description="Whether the token buckets below apply at all.")
    rate_limit_client_per_s: float = Field(
        default=50.0, gt=0, description="Requests per second per client address, sustained."
    )
    rate_limit_client_burst: int = Field(
        default=100, ge=1, description="Requests per client address at once (the bucket's size)."
    )
    rate_limit_user_per_s: float = Field(
        default=50.0, gt=0, description="Requests per second per user (token subject), sustained."
    )
    rate_limit_user_burst: int = Field(default=100, ge=1, description="Requests per user at once (the bucket's size).")
    rate_limit_login_per_s: float = Field(
        default=1.0,
        gt=0,
        description="Logins (POST /api/v1/sessions) per second per client address, sustained, on top of the client "
        "limit: a ceiling on all attempts. Failed logins are what the users service throttles, per "
        "account and per client, in its database.",
    )
    rate_limit_login_burst: int = Field(
        default=60,
        ge=1,
        description="Logins per client address at once: generous, since an office behind one NAT "
        "logs in together at 9:00.",
    )
    rate_limit_password_per_s: float = Field(
        default=0.5,
        gt=0,
        description="Requests that set a password (POST /api/v1/users, PATCH /api/v1/users/me) per second per "
        "client address, sustained: each costs an argon2 hash, so they get a limit of their own.",
    )
    rate_limit_password_burst: int = Field(
        default=20, ge=1, description="Password-setting requests per client address at once."
    )
    rate_limit_state_path: Path = Field(
        default_factory=_default_state_path,
        description="The bucket table every worker process on the host shares (an mmap'ed file; tmpfs by default).",
    )
    rate_limit_table_slots: int = Field(
        default=65536,
        ge=64,
        le=4_194_304,
        description="Buckets in the table (rounded up to a power of two, 24 bytes each); under pressure the least "
        "recently touched bucket is reused.",
    )

    upstream_connect_timeout_s: float = Field(
        default=1.0, gt=0, le=30, description="Seconds to open a connection to an upstream."
    )
    upstream_max_connections: int = Field(
        default=200, ge=1, le=10_000, description="Connections per upstream, per worker process."
    )
    upstream_keepalive_s: float = Field(
        default=30.0,
        ge=0,
        description="Seconds an idle upstream connection is kept open for reuse; 0: a new connection per request.",
    )
    retry_attempts: int = Field(
        default=2,
        ge=0,
        le=5,
        description="Retries of a safe request (GET, HEAD, OPTIONS) after a connect error, 502 or 503, within the "
        "route's timeout; other methods are never retried.",
    )
    retry_backoff_s: float = Field(
        default=0.05,
        ge=0,
        le=5,
        description="Base of the back-off between retries, in seconds: retry n waits about base * 2^n (0.5 to 1.5 "
        "times that), never past the route's timeout.",
    )

    # Circuit breaker per upstream (state per worker process).
    breaker_consecutive_failures: int = Field(
        default=5,
        ge=1,
        description="Failures in a row that open an upstream's circuit. Each worker process keeps its own circuits.",
    )
    breaker_failure_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of failed calls within BREAKER_WINDOW_S that opens the circuit, once there were at least "
        "BREAKER_MIN_REQUESTS calls.",
    )
    breaker_window_s: float = Field(
        default=10.0, gt=0, description="Seconds of calls the failure ratio is computed over."
    )
    breaker_min_requests: int = Field(
        default=20,
        ge=1,
        description="Calls within the window before the failure ratio counts, so a few early "
        "failures do not open the circuit.",
    )
    breaker_cooldown_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds an open circuit fails fast (503) before one probe call is let through (half-open).",
    )

    readiness_timeout_s: float = Field(
        default=1.0, gt=0, le=10, description="Seconds each upstream's /readyz may take for /readyz/upstreams."
    )
    openapi_cache_ttl_s: float = Field(
        default=60.0,
        ge=0,
        description="Seconds the merged OpenAPI document is reused before it is built again "
        "from the upstreams' documents.",
    )

    @field_validator("upstreams", mode="before")
    @classmethod
    def _split_upstreams(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _check_gateway(self) -> Settings:
        routed = set(_routed_services())
        unknown = [u for u in self.upstreams if u not in routed]
        if unknown:
            raise ValueError(f"UPSTREAMS names services without public prefixes or unknown: {unknown}")
        issuer = catalog.token_issuer().name
        if self.jwks_url is None and issuer in self.upstreams:
            self.jwks_url = service_url(self, issuer) + catalog.JWKS_PATH
        return self
