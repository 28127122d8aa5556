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
    # tmpfs, so the table is memory shared by the workers through mmap. The directory is per user and
    # checked (owner, mode 0700, no symlinks) when the table is opened: see ratelimit.SharedTokenBuckets.
    shm = Path("/dev/shm")  # noqa: S108
    base = shm if shm.is_dir() else Path(tempfile.gettempdir())
    return base / f"retail-gateway-{os.getuid()}" / "ratelimit.bin"


def _routed_services() -> list[str]:
    return [s.name for s in catalog.SERVICES if s.public_prefixes]


class Settings(KitSettings):
    service_name: str = "gateway"

    # Which catalog services this deployment routes to (default: every service with public prefixes).
    # A prefix of a service not listed here answers 404, and /readyz/upstreams does not check it.
    upstreams: Annotated[list[str], NoDecode] = Field(default_factory=_routed_services)

    # Client address: X-Forwarded-For is believed only when the peer is one of these networks.
    trusted_proxies: TrustedProxies = Field(default_factory=list)

    # Token buckets: a steady rate (tokens per second) and a burst (bucket size), per scope.
    rate_limit_enabled: bool = True
    rate_limit_client_per_s: float = Field(default=50.0, gt=0)
    rate_limit_client_burst: int = Field(default=100, ge=1)
    rate_limit_user_per_s: float = Field(default=50.0, gt=0)
    rate_limit_user_burst: int = Field(default=100, ge=1)
    # POST /api/v1/sessions (login), per client address, on top of the client limit: a generous ceiling
    # on all attempts (an office behind one NAT logs in together at 9:00). Failed logins are what the
    # users service throttles, per account and per client, in its database.
    rate_limit_login_per_s: float = Field(default=1.0, gt=0)
    rate_limit_login_burst: int = Field(default=60, ge=1)
    # Requests that set a password (POST /api/v1/users, PATCH /api/v1/users/me), per client address:
    # each costs an argon2 hash, so they get a limit of their own.
    rate_limit_password_per_s: float = Field(default=0.5, gt=0)
    rate_limit_password_burst: int = Field(default=20, ge=1)
    # The bucket table shared by every worker process on the host (an mmap'ed file, tmpfs by default).
    rate_limit_state_path: Path = Field(default_factory=_default_state_path)
    rate_limit_table_slots: int = Field(default=65536, ge=64, le=4_194_304)

    # Forwarding.
    upstream_connect_timeout_s: float = Field(default=1.0, gt=0, le=30)
    upstream_max_connections: int = Field(default=200, ge=1, le=10_000)
    upstream_keepalive_s: float = Field(default=30.0, ge=0)
    # Retries of safe requests (GET/HEAD/OPTIONS) on connect errors and 502/503, within the route timeout.
    retry_attempts: int = Field(default=2, ge=0, le=5)
    retry_backoff_s: float = Field(default=0.05, ge=0, le=5)

    # Circuit breaker per upstream (state per worker process).
    breaker_consecutive_failures: int = Field(default=5, ge=1)
    breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_window_s: float = Field(default=10.0, gt=0)
    breaker_min_requests: int = Field(default=20, ge=1)
    breaker_cooldown_s: float = Field(default=5.0, gt=0)

    # /readyz/upstreams and the merged OpenAPI document.
    readiness_timeout_s: float = Field(default=1.0, gt=0, le=10)
    openapi_cache_ttl_s: float = Field(default=60.0, ge=0)

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
        if self.jwks_url is None and "users" in self.upstreams:
            self.jwks_url = service_url(self, "users") + "/.well-known/jwks.json"
        return self
