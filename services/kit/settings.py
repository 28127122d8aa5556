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


class TLSSettings(BaseSettings):
    """Where this process's TLS identity is (the one-machine stack's local CA). Its own class because the
    server launcher (``services.deploy.serve``) needs these two and nothing else, before the app is loaded."""

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True, hide_input_in_errors=True)

    tls_identity_file: Path | None = Field(
        default=None,
        description="This process's private key and certificate, one PEM file from the one-machine stack's local "
        "CA. With TLS_CA_FILE the service serves HTTPS only, refuses any client without a certificate from that "
        "CA, presents this certificate to the services it calls and to the database, and picks up a renewed "
        "file while running. Unset in a cluster, where the mesh does mutual TLS.",
    )
    tls_ca_file: Path | None = Field(
        default=None,
        description="The CA certificate that every peer's certificate must chain to (with TLS_IDENTITY_FILE).",
    )
    tls_reload_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds between checks for a renewed TLS_IDENTITY_FILE (a `stat` each). The runner renews an "
        "identity with a third of its day left, so any interval well under hours serves it in time.",
    )

    @model_validator(mode="after")
    def _check_tls(self) -> TLSSettings:
        if (self.tls_identity_file is None) != (self.tls_ca_file is None):
            raise ValueError("set TLS_IDENTITY_FILE and TLS_CA_FILE together, or neither")
        return self


class KitSettings(TLSSettings):
    """What every service reads. Services subclass this and add their own fields."""

    # hide_input_in_errors: a rejected DATABASE_URL or PEM must not be printed into the start-up log.
    model_config = SettingsConfigDict(
        extra="ignore", env_ignore_empty=True, secrets_dir=_secrets_dir(), hide_input_in_errors=True
    )

    service_name: str = Field(
        description="The service's name in logs, metrics and service tokens; each service's "
        "settings default it to its own catalog name."
    )
    environment: Literal["dev", "test", "prod"] = Field(
        default="dev",
        description="Kind of deployment. `prod` refuses a managed database (DB_SECRET_ARN, DB_IAM_USER) "
        "reached without verifying the server (DB_SSLMODE=verify-full).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="Lowest level logged. Logs are JSON lines on stdout; INFO includes one access line per request.",
    )
    gelf_host: str | None = Field(
        default=None, description="Logstash's GELF input, to ship logs to as well as stdout; unset: stdout only."
    )
    gelf_port: int = Field(
        default=12201, ge=1, le=65535, description="Port of the GELF input (12201 is GELF's customary port)."
    )
    gelf_protocol: Literal["udp", "tcp"] = Field(
        default="udp",
        description="Transport to the GELF input; UDP is GELF's usual one and never makes the "
        "service wait for Logstash.",
    )
    problem_base_uri: str = Field(
        default="https://api.retail.example/problems/",
        description="Prefix of the `type` URI of every problem+json error body (RFC 9457); the problem kind is "
        "appended.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="The largest request body accepted, in bytes (default 1 MiB); a larger one gets 413. Counted as "
        "it arrives, since chunked bodies declare no length.",
    )

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL with its credentials, used when neither DB_SECRET_ARN nor DB_IAM_USER is set.",
    )
    db_secret_arn: str | None = Field(
        default=None,
        description="Secrets Manager secret `{username, password}` (the RDS-managed one) to connect "
        "with, re-read on rotation; needs DB_HOST and DB_NAME.",
    )
    db_iam_user: str | None = Field(
        default=None,
        description="RDS IAM database authentication: the service's own role, with a 15-minute token "
        "as its password (no stored password); needs DB_HOST, DB_NAME and "
        "DB_SSLMODE=verify-full.",
    )
    db_host: str | None = Field(default=None, description="Database host name, with DB_SECRET_ARN or DB_IAM_USER.")
    db_port: int = Field(
        default=5432,
        ge=1,
        le=65535,
        description="Database port, with DB_SECRET_ARN or DB_IAM_USER (PostgreSQL's default).",
    )
    db_name: str | None = Field(default=None, description="Database name, with DB_SECRET_ARN or DB_IAM_USER.")
    aws_region: str | None = Field(
        default=None,
        description="AWS region of DB_SECRET_ARN and of IAM tokens; unset: boto3's own lookup "
        "(its environment variables, its config file).",
    )
    aws_endpoint_url: str | None = Field(
        default=None, description="Secrets Manager endpoint override, only for tests against a local moto server."
    )
    db_sslmode: Literal["disable", "verify-full"] = Field(
        default="disable",
        description="`verify-full` checks the database server's certificate and host name against DB_SSL_ROOT_CERT "
        "(required with DB_IAM_USER, in prod with a managed database, and by the one-machine stack's own "
        "PostgreSQL); `disable` is for a plaintext server of your own.",
    )
    db_ssl_root_cert: Path | None = Field(
        default=None,
        description="CA bundle (PEM file) that verifies the database server with "
        "DB_SSLMODE=verify-full: the RDS bundle on AWS. When it is TLS_CA_FILE (the one-machine stack), the "
        "connections also present TLS_IDENTITY_FILE as client certificate, renewals included.",
    )
    db_pool_min: int = Field(
        default=2, ge=0, le=100, description="Connections the pool keeps open (at most DB_POOL_MAX)."
    )
    db_pool_max: int = Field(
        default=10,
        ge=1,
        le=200,
        description="Most connections one process holds; the database's max_connections must "
        "cover every replica's pool.",
    )
    db_connect_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Seconds one connection attempt may take."
    )
    db_startup_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Seconds a starting process retries reaching the database (not up yet, restarting) before it "
        "gives up and exits.",
    )
    db_secret_ttl_s: float = Field(
        default=300.0,
        ge=0,
        description="Seconds the credentials read from DB_SECRET_ARN are reused before the next connection reads "
        "them again; a rejected password drops them at once, so a rotation needs no restart.",
    )

    jwks_url: str | None = Field(
        default=None,
        description="Where the users service publishes the keys of user tokens (JWKS). Every service "
        "whose routes take user tokens verifies them itself against it.",
    )
    jwt_issuer: str = Field(
        default="retail-platform", description="`iss` of user tokens; the users service and every verifier must agree."
    )
    jwt_audience: str = Field(
        default="retail-api", description="`aud` of user tokens; the users service and every verifier must agree."
    )
    jwks_cache_ttl_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds the fetched JWKS is reused; a token with an unknown `kid` refreshes it sooner.",
    )
    jwks_min_refresh_interval_s: float = Field(
        default=10.0,
        ge=0,
        description="Seconds between JWKS fetches caused by unknown `kid`s, so forged tokens "
        "cannot make every request fetch it.",
    )

    service_private_key: SecretStr | None = Field(
        default=None,
        description="This service's Ed25519 private key (PEM): it signs short-lived tokens for its "
        "calls to other services' /internal APIs. Only services the catalog lets call "
        "others get one.",
    )
    service_public_keys: dict[str, str] = Field(
        default_factory=dict,
        description="JSON `{service: Ed25519 public key PEM}` of the services allowed to call "
        "this one's /internal API; a caller not listed gets 401.",
    )
    service_url_template: str = Field(
        default="http://127.0.0.1:{port}",
        description="Where the other services are, `{name}` and `{port}` filled in from the catalog: the "
        "one-machine stack uses loopback ports, a cluster `http://{name}:{port}`.",
    )
    service_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Explicit URLs of other services, JSON `{name: url}`; they win over SERVICE_URL_TEMPLATE.",
    )

    @field_validator("service_public_keys", "service_urls", mode="before")
    @classmethod
    def _parse_json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError('must be a JSON object, e.g. {"products": "..."}') from exc
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
            raise ValueError(
                "DB_SSLMODE=verify-full needs DB_SSL_ROOT_CERT (the RDS CA bundle; on one machine, TLS_CA_FILE)"
            )
        if self.db_sslmode == "disable" and self.db_ssl_root_cert:
            # A CA to verify the server with, and no TLS at all: a downgrade nobody meant.
            raise ValueError("DB_SSL_ROOT_CERT is set but DB_SSLMODE=disable: set DB_SSLMODE=verify-full, or drop it")
        return self

    @property
    def has_database(self) -> bool:
        return bool(self.database_url or self.db_secret_arn or self.db_iam_user)
