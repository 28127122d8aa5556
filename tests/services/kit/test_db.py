"""Database credentials from the RDS-managed secret, and recovery when the password rotates."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from services.kit.db import Database, _parse_url
from services.kit.settings import KitSettings
from services.runner.postgres import PostgresServer
from tests.support.procs import free_port


@pytest.fixture(scope="module")
def scram_pg() -> Iterator[PostgresServer]:
    """A server of its own: its roles and passwords change under the tests."""
    server = PostgresServer(port=free_port(), crash_unsafe_for_tests=True)
    server.init()
    server.start()
    server.psql("CREATE ROLE app LOGIN PASSWORD 'first-password'")
    server.psql("CREATE DATABASE appdb OWNER app")
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _secrets(moto_url: str) -> object:
    return boto3.client(
        "secretsmanager",
        region_name="eu-west-1",
        endpoint_url=moto_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def test_credentials_come_from_the_rds_secret_and_survive_rotation(
    scram_pg: PostgresServer, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RDS rotates the master password inside its Secrets Manager secret. A service must pick the new one
    up on its next connection, without a restart, or every replica fails once its pool recycles."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = _secrets(moto_url)
    arn = client.create_secret(  # type: ignore[attr-defined]
        Name="rds!db-test", SecretString=json.dumps({"username": "app", "password": "first-password"})
    )["ARN"]
    settings = KitSettings(
        service_name="products",
        db_secret_arn=arn,
        db_host="127.0.0.1",
        db_port=scram_pg.port,
        db_name="appdb",
        aws_region="eu-west-1",
        aws_endpoint_url=moto_url,
        db_pool_min=0,
        db_pool_max=2,
        db_startup_timeout_s=5,
    )

    async def run() -> None:
        db = Database(settings)
        pool = await db.connect()
        try:
            assert await pool.fetchval("SELECT current_user") == "app"
            # Rotate: the server and the secret change; cached credentials are now wrong.
            scram_pg.psql("ALTER ROLE app PASSWORD 'second-password'")
            client.put_secret_value(  # type: ignore[attr-defined]
                SecretId=arn, SecretString=json.dumps({"username": "app", "password": "second-password"})
            )
            await pool.expire_connections()
            assert await pool.fetchval("SELECT 42") == 42
        finally:
            await db.close()

    asyncio.run(run())


def test_a_wrong_password_is_not_retried_forever(
    scram_pg: PostgresServer, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up retries have a deadline: a secret that is simply wrong must fail the start, not hang it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    arn = _secrets(moto_url).create_secret(  # type: ignore[attr-defined]
        Name="rds!db-wrong", SecretString=json.dumps({"username": "app", "password": "nope"})
    )["ARN"]
    settings = KitSettings(
        service_name="products",
        db_secret_arn=arn,
        db_host="127.0.0.1",
        db_port=scram_pg.port,
        db_name="appdb",
        aws_region="eu-west-1",
        aws_endpoint_url=moto_url,
        db_startup_timeout_s=1.0,
    )
    import asyncpg

    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(Database(settings).connect())


def test_database_url_is_parsed_and_validated() -> None:
    """A malformed DATABASE_URL fails with a message saying what shape is expected."""
    assert _parse_url("postgresql://u:p%40ss@db.internal:6543/shop") == {
        "host": "db.internal",
        "port": 6543,
        "database": "shop",
        "user": "u",
        "password": "p@ss",
    }
    with pytest.raises(ValueError, match="postgresql://user:password@host:port/database"):
        _parse_url("mysql://u@h/db")


def test_verify_full_builds_a_hostname_checking_tls_context(tmp_path: Path) -> None:
    """On AWS the connection must verify the server against the RDS CA bundle (verify-full): a context
    without hostname checking would accept any certificate the CA ever signed."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    bundle = tmp_path / "rds-ca.pem"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    settings = KitSettings(
        service_name="products",
        database_url="postgresql://u@db.example/x",
        db_sslmode="verify-full",
        db_ssl_root_cert=bundle,
    )
    ctx = Database(settings)._kwargs["ssl"]
    import ssl

    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.check_hostname is True
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_iam_user_gets_a_presigned_token_renewed_on_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    """DB_IAM_USER: the password is an RDS IAM auth token made locally from the pod's credentials (no
    stored password); a rejected token is replaced by a fresh one, not retried."""
    import certifi

    from services.kit.db import IamTokenCredentials

    for k, v in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "session",
    }.items():
        monkeypatch.setenv(k, v)
    settings = KitSettings(
        service_name="orders",
        db_iam_user="orders_app",
        db_host="orders.db.example.com",
        db_name="orders",
        db_sslmode="verify-full",
        db_ssl_root_cert=Path(certifi.where()),
        aws_region="eu-west-1",
    )
    db = Database(settings)
    creds = db._secret
    assert isinstance(creds, IamTokenCredentials)
    user, token = asyncio.run(creds.get())
    assert user == "orders_app"
    assert token.startswith("orders.db.example.com:5432/?Action=connect&DBUser=orders_app&")
    assert "X-Amz-Signature=" in token
    calls: list[dict[str, object]] = []
    sign = creds._client.generate_db_auth_token

    def counting(**kw: object) -> str:
        calls.append(kw)
        return str(sign(**kw))

    monkeypatch.setattr(creds._client, "generate_db_auth_token", counting)
    assert asyncio.run(creds.get())[1] == token  # cached: no new signature
    assert calls == []
    creds.invalidate()  # what the pool's connect hook does on InvalidPasswordError
    asyncio.run(creds.get())
    assert calls == [{"DBHostname": "orders.db.example.com", "Port": 5432, "DBUsername": "orders_app"}]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"db_secret_arn": "arn:aws:secretsmanager:eu-west-1:1:secret:x"}, "not both"),
        ({"db_sslmode": "disable"}, "verify-full"),
    ],
)
def test_iam_user_settings_are_checked(extra: dict[str, str], message: str) -> None:
    base: dict[str, Any] = {
        "service_name": "orders",
        "db_iam_user": "orders_app",
        "db_host": "h.example.com",
        "db_name": "orders",
        "db_sslmode": "verify-full",
        "db_ssl_root_cert": "/etc/ssl/rds.pem",
    }
    with pytest.raises(ValueError, match=message):
        KitSettings(**{**base, **extra})


def test_release_sends_no_reset_statement_and_still_ends_a_forgotten_transaction(scram_pg: PostgresServer) -> None:
    """Releasing a pooled connection costs no round trip (the last statement the server saw is the
    caller's, not asyncpg's default ``RESET ALL`` batch), while a transaction left open is still rolled
    back before the connection is reused."""
    scram_pg.psql("CREATE ROLE pooled LOGIN PASSWORD 'pooled-password'")
    settings = KitSettings(
        service_name="products",
        database_url=f"postgresql://pooled:pooled-password@127.0.0.1:{scram_pg.port}/appdb",
        db_pool_min=1,
        db_pool_max=1,
        db_startup_timeout_s=5,
    )
    import asyncpg

    async def run() -> None:
        db = Database(settings)
        pool = await db.connect()
        try:
            pid = await pool.fetchval("SELECT pg_backend_pid() /* the caller's */")
            watcher = await asyncpg.connect(
                user="pooled", password="pooled-password", host="127.0.0.1", port=scram_pg.port, database="appdb"
            )
            try:
                last = await watcher.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
            finally:
                await watcher.close()
            assert last == "SELECT pg_backend_pid() /* the caller's */"
            async with pool.acquire() as conn:
                await conn.execute("BEGIN")  # not through conn.transaction(): forgotten on purpose
            async with pool.acquire() as conn:
                assert not conn.is_in_transaction()
        finally:
            await db.close()

    asyncio.run(run())


_SESSION_STATE = [
    (re.compile(r"\bLISTEN\b"), "LISTEN keeps a session subscribed"),
    (re.compile(r"""["']\s*SET\s+(?!LOCAL\b)"""), "SET without LOCAL outlives the transaction"),
    (re.compile(r"set_config\([^)]*,\s*false\s*\)", re.IGNORECASE), "set_config(..., false) is session-wide"),
    (re.compile(r"\bCREATE\s+TEMP", re.IGNORECASE), "temporary tables live as long as the session"),
    (re.compile(r"WITH\s+HOLD", re.IGNORECASE), "a holdable cursor outlives its transaction"),
]


def test_services_keep_no_session_state_on_pooled_connections() -> None:
    """The pool does not reset connections on release (one round trip per query saved), which is safe
    only while no service leaves session state behind: no LISTEN, no session SET, no temporary tables or
    holdable cursors, and every session-level advisory lock released in the same file."""
    root = Path(__file__).resolve().parents[3] / "services"
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.parent.name == "runner":  # the runner's own psql/nginx/prometheus configuration, no pool
            continue
        text = path.read_text()
        for pattern, why in _SESSION_STATE:
            found += [f"{path.relative_to(root)}: {m.group(0)!r}: {why}" for m in pattern.finditer(text)]
        if re.search(r"pg_(try_)?advisory_lock\(", text) and "pg_advisory_unlock(" not in text:
            found.append(f"{path.relative_to(root)}: a session advisory lock that is never released")
    assert found == []
