"""Settings of the users service (environment variables are the upper-case field names).

The signing keys are the deployment's (``services.deploy.keyring`` or a Kubernetes Secret), never
generated here: every replica must sign with, and publish, the same keys.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.kit import keys
from services.kit.client_address import TrustedProxies
from services.kit.settings import KitSettings
from services.users.rules import PASSWORD_MAX, PASSWORD_MIN, check_email


class Settings(KitSettings):
    # Never echo an input value in a validation error: these inputs are private keys and passwords.
    model_config = SettingsConfigDict(hide_input_in_errors=True)  # merged with KitSettings' config

    service_name: str = "users"

    jwt_signing_keys: SecretStr | None = Field(
        default=None,
        description="Required. JSON `{kid: Ed25519 private key PEM}`: every key is published in the JWKS, the "
        "active one signs. Rotation: add a key and make it active; drop the old one after the "
        "access-token lifetime.",
    )
    jwt_active_kid: str | None = Field(
        default=None, description="Required. The kid (one of JWT_SIGNING_KEYS) that signs new tokens."
    )
    access_token_ttl_s: int = Field(
        default=15 * 60,
        ge=60,
        le=24 * 3600,
        description="Seconds an access token is valid (15 min): how long a key must stay published after it "
        "stopped signing.",
    )
    refresh_token_ttl_s: int = Field(
        default=30 * 24 * 3600, ge=300, le=365 * 24 * 3600, description="Seconds a refresh token is valid (30 days)."
    )

    admin_email: str | None = Field(
        default=None,
        description="E-mail of the first admin, created at start-up when ADMIN_PASSWORD is set too; "
        "never reset afterwards.",
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description=f"Password of the first admin ({PASSWORD_MIN} to {PASSWORD_MAX} characters), with ADMIN_EMAIL.",
    )

    # Login throttling.
    login_failure_window_s: int = Field(
        default=15 * 60,
        ge=1,
        le=24 * 3600,
        description="Seconds a failed login counts against the limits below. Failures are stored in PostgreSQL, so "
        "the limits hold across replicas.",
    )
    login_max_failures_per_account: int = Field(
        default=5, ge=1, le=1000, description="Failed logins per account within the window; then 429."
    )
    login_max_failures_per_client: int = Field(
        default=20, ge=1, le=100_000, description="Failed logins per client address within the window; then 429."
    )
    trusted_proxies: TrustedProxies = Field(
        default_factory=list,
        description="Peers whose X-Forwarded-For is believed (the gateway, the edge): CIDRs, comma-separated or a "
        "JSON list. Empty: the client address is the peer's.",
    )

    # argon2id.
    argon2_time_cost: int = Field(
        default=2,
        ge=1,
        le=10,
        description="argon2id passes (t). The defaults are the OWASP Password Storage Cheat Sheet's (m=19 MiB, t=2, "
        "p=1), about 40 ms on one core here. A hash made with other parameters is upgraded at the "
        "account's next successful login.",
    )
    argon2_memory_kib: int = Field(
        default=19 * 1024, ge=8 * 1024, le=1024 * 1024, description="argon2id memory per hash (m), in KiB (19 MiB)."
    )
    argon2_parallelism: int = Field(default=1, ge=1, le=8, description="argon2id lanes (p).")
    hash_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Hashes at once per replica; each takes ARGON2_MEMORY_KIB of RAM and a core.",
    )
    new_password_hash_concurrency: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Of those, how many new passwords (sign-up, password change, hash upgrade) may use, so logins "
        "always find a slot; at most HASH_CONCURRENCY.",
    )
    new_password_queue_max: int = Field(
        default=16,
        ge=0,
        le=10_000,
        description="New-password hashes that may wait for a slot; beyond that the answer is 429 at once rather "
        "than a queue that keeps the cores hashing.",
    )

    _signing_keys: dict[str, Ed25519PrivateKey] = PrivateAttr(default_factory=dict)

    @field_validator("admin_email")
    @classmethod
    def _admin_email(cls, value: str | None) -> str | None:
        if value is not None:
            check_email(value)
        return value

    @model_validator(mode="after")
    def _check_users(self) -> Settings:
        self._signing_keys = _load_signing_keys(self.jwt_signing_keys, self.jwt_active_kid)
        if self.new_password_hash_concurrency > self.hash_concurrency:
            raise ValueError("NEW_PASSWORD_HASH_CONCURRENCY must not exceed HASH_CONCURRENCY")
        if (self.admin_email is None) != (self.admin_password is None):
            raise ValueError("set both ADMIN_EMAIL and ADMIN_PASSWORD, or neither")
        if self.admin_password is not None:
            length = len(self.admin_password.get_secret_value())
            if not PASSWORD_MIN <= length <= PASSWORD_MAX:
                raise ValueError(f"ADMIN_PASSWORD must be {PASSWORD_MIN}..{PASSWORD_MAX} characters")
        return self

    @property
    def signing_keys(self) -> dict[str, Ed25519PrivateKey]:
        return dict(self._signing_keys)

    @property
    def active_kid(self) -> str:
        assert self.jwt_active_kid is not None
        return self.jwt_active_kid


def _load_signing_keys(raw: SecretStr | None, active: str | None) -> dict[str, Ed25519PrivateKey]:
    if raw is None:
        raise ValueError(
            "JWT_SIGNING_KEYS is required: JSON {kid: Ed25519 private key PEM} "
            "(services.deploy.keyring on one machine, or the deployment's secret)"
        )
    try:
        doc = json.loads(raw.get_secret_value())
    except json.JSONDecodeError:
        raise ValueError("JWT_SIGNING_KEYS must be a JSON object {kid: private key PEM}") from None
    if not isinstance(doc, dict) or not doc:
        raise ValueError("JWT_SIGNING_KEYS must be a non-empty JSON object {kid: private key PEM}")
    loaded: dict[str, Ed25519PrivateKey] = {}
    for kid, pem in doc.items():
        if not isinstance(kid, str) or not kid or len(kid) > 64:
            raise ValueError("JWT_SIGNING_KEYS: every kid must be a non-empty string of at most 64 characters")
        if not isinstance(pem, str):
            raise ValueError(f"JWT_SIGNING_KEYS[{kid!r}] must be a PEM string")
        try:
            loaded[kid] = keys.load_private(pem)
        except ValueError as exc:
            # The message names the kid, never the key material.
            raise ValueError(f"JWT_SIGNING_KEYS[{kid!r}]: {exc}") from None
    if not active:
        raise ValueError("JWT_ACTIVE_KID is required: the kid (in JWT_SIGNING_KEYS) that signs new tokens")
    if active not in loaded:
        raise ValueError(f"JWT_ACTIVE_KID {active!r} is not one of the kids in JWT_SIGNING_KEYS {sorted(loaded)}")
    return loaded
