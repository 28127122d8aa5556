"""Settings from the environment (pydantic-settings), shared by every service.

Secrets can come from the environment or, preferably, from files: set ``SECRETS_DIR`` to a directory
holding one file per setting (a Kubernetes Secret mounted as a volume, CKV_K8S_35). Database
credentials can instead come from a Secrets Manager secret (``DB_SECRET_ARN``) or, on RDS, from IAM database
authentication (``DB_IAM_USER``: the service's own role, no stored password).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


def _secrets_dir() -> str | None:
    path = os.environ.get("SECRETS_DIR")
    return path if path and Path(path).is_dir() else None


class KitSettings(BaseSettings):
    """What every service reads. Services subclass this and add their own fields."""

    # hide_input_in_errors: a rejected DATABASE_URL or PEM must not be printed into the start-up log.
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True, secrets_dir=_secrets_dir(),
                                      hide_input_in_errors=True)

    service_name: str
    environment: Literal["dev", "test", "prod"] = "dev"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Optional GELF shipping (Logstash's GELF input). Logs always go to stdout as JSON as well.
    gelf_host: str | None = None
    gelf_port: int = Field(default=12201, ge=1, le=65535)
    gelf_protocol: Literal["udp", "tcp"] = "udp"
    problem_base_uri: str = "https://api.retail.example/problems/"
    # The largest request body accepted (413 above it), counted as it arrives: chunked bodies declare no length.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    # Database: a URL, or the RDS-managed secret plus host/port/name.
    database_url: SecretStr | None = None
    db_secret_arn: str | None = None
    # IAM database authentication (RDS): the service's own role, with a 15-minute token as its password.
    db_iam_user: str | None = None
    db_host: str | None = None
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str | None = None
    aws_region: str | None = None
    aws_endpoint_url: str | None = None  # only for tests against a local moto server
    db_sslmode: Literal["disable", "verify-full"] = "disable"
    db_ssl_root_cert: Path | None = None
    db_pool_min: int = Field(default=2, ge=0, le=100)
    db_pool_max: int = Field(default=10, ge=1, le=200)
    db_connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    db_startup_timeout_s: float = Field(default=30.0, gt=0, le=600)
    db_secret_ttl_s: float = Field(default=300.0, ge=0)

    # User tokens (issued by the users service, verified everywhere against its JWKS).
    jwks_url: str | None = None
    jwt_issuer: str = "retail-platform"
    jwt_audience: str = "retail-api"
    jwks_cache_ttl_s: float = Field(default=300.0, gt=0)
    jwks_min_refresh_interval_s: float = Field(default=10.0, ge=0)

    # Service-to-service authentication: this service's Ed25519 private key (PEM) signs short-lived
    # tokens for the services it calls; the public keys of the services allowed to call it verify them.
    service_private_key: SecretStr | None = None
    service_public_keys: dict[str, str] = Field(default_factory=dict)
    # Where the other services are: the one-machine stack uses loopback ports, a cluster "http://{name}:{port}".
    service_url_template: str = "http://127.0.0.1:{port}"
    service_urls: dict[str, str] = Field(default_factory=dict)  # explicit overrides, JSON {name: url}

    @field_validator("service_public_keys", "service_urls", mode="before")
    @classmethod
    def _parse_json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError("must be a JSON object, e.g. {\"products\": \"...\"}") from exc
        return value

    @model_validator(mode="after")
    def _check_database(self) -> KitSettings:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        if self.db_secret_arn and self.db_iam_user:
            raise ValueError("set DB_SECRET_ARN or DB_IAM_USER, not both")
        if self.db_iam_user and self.db_sslmode != "verify-full":
            raise ValueError("DB_IAM_USER needs DB_SSLMODE=verify-full (RDS accepts IAM tokens over TLS only)")
        source = "DB_SECRET_ARN" if self.db_secret_arn else "DB_IAM_USER" if self.db_iam_user else None
        if source:
            missing = [k for k in ("db_host", "db_name") if not getattr(self, k)]
            if missing:
                raise ValueError(f"{source} needs {', '.join(m.upper() for m in missing)} as well")
            if self.db_host and not _HOST.match(self.db_host):
                raise ValueError("DB_HOST must be a host name")
        if self.environment == "prod" and source and self.db_sslmode != "verify-full":
            raise ValueError("in prod the database connection must verify the server: DB_SSLMODE=verify-full")
        if self.db_sslmode == "verify-full" and not self.db_ssl_root_cert:
            raise ValueError("DB_SSLMODE=verify-full needs DB_SSL_ROOT_CERT (the RDS CA bundle)")
        return self

    @property
    def has_database(self) -> bool:
        return bool(self.database_url or self.db_secret_arn or self.db_iam_user)
