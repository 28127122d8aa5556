"""Settings: a bad value fails at start-up with a message naming what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.kit.settings import KitSettings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"db_pool_min": 20, "db_pool_max": 5}, "DB_POOL_MIN must not exceed DB_POOL_MAX"),
        ({"db_secret_arn": "arn:aws:secretsmanager:eu-west-1:1:secret:x"}, "DB_HOST, DB_NAME"),
        ({"db_sslmode": "verify-full"}, "DB_SSL_ROOT_CERT"),
        ({"db_ssl_root_cert": "/run/tls/ca.pem"}, "DB_SSL_ROOT_CERT is set but DB_SSLMODE=disable"),
        (
            {"environment": "prod", "db_secret_arn": "arn:x", "db_host": "db.internal", "db_name": "p"},
            "DB_SSLMODE=verify-full",
        ),
        ({"service_public_keys": "{not json"}, "JSON object"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"tls_identity_file": "/run/tls/products.pem"}, "TLS_IDENTITY_FILE and TLS_CA_FILE together"),
        ({"tls_ca_file": "/run/tls/ca.pem"}, "TLS_IDENTITY_FILE and TLS_CA_FILE together"),
    ],
)
def test_bad_settings_fail_with_an_actionable_message(kwargs: dict[str, object], message: str) -> None:
    """Misconfiguration must stop the process at start-up, naming the key, rather than fail on first use."""
    with pytest.raises(ValidationError, match=message):
        KitSettings(service_name="products", **kwargs)  # type: ignore[arg-type]


def test_secrets_can_come_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys are mounted as files in a cluster (a Secret volume), never baked into env dumps."""
    (tmp_path / "service_private_key").write_text("-----BEGIN PRIVATE KEY-----\nabc\n")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    import importlib

    from services.kit import settings as settings_module

    reloaded = importlib.reload(settings_module)
    try:
        s = reloaded.KitSettings(service_name="products")
        assert s.service_private_key is not None
        assert s.service_private_key.get_secret_value().startswith("-----BEGIN PRIVATE KEY-----")
    finally:
        monkeypatch.delenv("SECRETS_DIR")
        importlib.reload(settings_module)
