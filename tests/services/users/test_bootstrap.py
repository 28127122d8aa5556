"""The first admin from ADMIN_EMAIL / ADMIN_PASSWORD, and settings that refuse a broken deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.deploy.keyring import KeyRing
from services.users.settings import Settings
from tests.services.users.support import db_fetch
from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack


def _login(proc: ServiceProcess, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{proc.url}/api/v1/sessions", json={"email": email, "password": password})


@pytest.mark.slow
def test_admin_bootstrap_is_idempotent_race_free_and_never_resets_or_promotes(stack: TestStack, logdir: Path) -> None:
    """Two replicas starting at once on an empty database both come up and exactly one admin exists.
    A restart with another ADMIN_PASSWORD does not reset the admin's password (a restart must not undo a
    password change). An existing customer account with the configured ADMIN_EMAIL is not promoted
    (whoever registered that e-mail first would otherwise become admin)."""
    base = stack.env_for("users")
    url = base["DATABASE_URL"]
    boss = {"ADMIN_EMAIL": "boss@example.com", "ADMIN_PASSWORD": "boss-password-1"}

    replicas = [ServiceProcess("users", {**base, **boss}, logdir).start(wait=False) for _ in range(2)]
    try:
        for proc in replicas:
            proc.wait_ready(60)
        rows = db_fetch(url, "SELECT roles FROM users WHERE lower(email) = 'boss@example.com'")
        assert len(rows) == 1
        assert sorted(rows[0]["roles"]) == ["admin", "customer"]
        r = httpx.post(
            f"{replicas[0].url}/api/v1/users",
            json={"email": "squatter@example.com", "password": "squatter-password", "name": "S"},
        )
        assert r.status_code == 201, r.text
    finally:
        for proc in replicas:
            proc.stop()

    changed = ServiceProcess(
        "users", {**base, "ADMIN_EMAIL": "BOSS@example.com", "ADMIN_PASSWORD": "another-password"}, logdir
    ).start()
    try:
        assert _login(changed, "boss@example.com", "boss-password-1").status_code == 201
        assert _login(changed, "boss@example.com", "another-password").status_code == 401
        assert "admin_password_not_reset" in changed.tail(20000)
    finally:
        changed.stop()

    squat = ServiceProcess(
        "users", {**base, "ADMIN_EMAIL": "squatter@example.com", "ADMIN_PASSWORD": "squatter-admin-pw"}, logdir
    ).start()
    try:
        roles = db_fetch(url, "SELECT roles FROM users WHERE email = 'squatter@example.com'")[0]["roles"]
        assert roles == ["customer"]
        assert "admin_bootstrap_conflict" in squat.tail(20000)
        assert db_fetch(url, "SELECT count(*) FROM users WHERE 'admin' = ANY(roles)")[0][0] == 1
    finally:
        squat.stop()


def _settings(**env: Any) -> Settings:
    keyring = KeyRing.generate()
    values: dict[str, Any] = {"jwt_signing_keys": json.dumps(keyring.jwt_keys), "jwt_active_kid": keyring.active_kid}
    values.update(env)
    return Settings(**{k: v for k, v in values.items() if v is not None})


def test_settings_accept_a_valid_keyring_and_rotation() -> None:
    keyring = KeyRing.generate().rotated()
    settings = Settings(jwt_signing_keys=json.dumps(keyring.jwt_keys), jwt_active_kid=keyring.active_kid)
    assert sorted(settings.signing_keys) == sorted(keyring.jwt_keys)
    assert settings.active_kid == keyring.active_kid


SECRET_MARKER = "MC4CAQAwBQYDK2VwBCIEI"  # the start of every Ed25519 PKCS#8 private key in base64


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"jwt_signing_keys": None}, "JWT_SIGNING_KEYS is required"),
        ({"jwt_signing_keys": "not json"}, "must be a JSON object"),
        ({"jwt_signing_keys": "{}"}, "non-empty JSON object"),
        (
            {
                "jwt_signing_keys": json.dumps(
                    {"k1": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIgarbage\n-----END PRIVATE KEY-----\n"}
                ),
                "jwt_active_kid": "k1",
            },
            "JWT_SIGNING_KEYS['k1']: not a PEM-encoded private key",
        ),
        ({"jwt_active_kid": None}, "JWT_ACTIVE_KID is required"),
        ({"jwt_active_kid": "nope"}, "JWT_ACTIVE_KID 'nope' is not one of the kids"),
        ({"admin_email": "a@example.com"}, "set both ADMIN_EMAIL and ADMIN_PASSWORD"),
        ({"admin_email": "a@example.com", "admin_password": "short"}, "ADMIN_PASSWORD must be 10..256"),
        ({"admin_email": "not an email", "admin_password": "long-enough-pw"}, "not an e-mail address"),
        ({"trusted_proxies": "10.0.0.0/8,not-a-cidr"}, "trusted_proxies"),
    ],
)
def test_settings_refuse_a_broken_deployment_clearly_and_without_echoing_secrets(
    env: dict[str, Any], message: str
) -> None:
    """Missing or invalid signing keys, an active kid outside the set, half an admin: start-up fails with a
    message that says what to fix and never contains key material or passwords."""
    with pytest.raises(ValidationError) as caught:
        _settings(**env)
    text = str(caught.value)
    assert message in text, text
    assert SECRET_MARKER not in text
    assert "long-enough-pw" not in text


def test_settings_refuse_a_non_ed25519_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(ValidationError, match="must be Ed25519"):
        _settings(jwt_signing_keys=json.dumps({"ec": pem}), jwt_active_kid="ec")


def test_trusted_proxies_accept_a_list_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, ::1/128")
    assert [str(n) for n in _settings().trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    monkeypatch.setenv("TRUSTED_PROXIES", '["192.168.0.0/16"]')
    assert [str(n) for n in _settings().trusted_proxies] == ["192.168.0.0/16"]


def test_the_service_does_not_start_without_signing_keys(stack: TestStack, logdir: Path) -> None:
    """A replica must never invent its own key: without JWT_SIGNING_KEYS the process exits, saying why."""
    env = {k: v for k, v in stack.env_for("users").items() if k not in ("JWT_SIGNING_KEYS", "JWT_ACTIVE_KID")}
    proc = ServiceProcess("users", env, logdir)
    with pytest.raises(RuntimeError, match="JWT_SIGNING_KEYS is required"):
        proc.start(timeout=30)
