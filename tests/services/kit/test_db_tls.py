"""A service reaches the stack's PostgreSQL over TLS with its own identity as client certificate, and a
renewed identity is what its new connections present."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from cryptography import x509

from services.kit import tls
from services.kit.db import Database, _ssl_context
from services.kit.settings import KitSettings
from tests.support.pgtls import TlsPostgres
from tests.support.procs import ServiceProcess
from tests.support.stack import TEST_CLIENT, TestStack

CLIENT_BACKENDS = """
SELECT a.usename, s.ssl, s.version, s.client_dn
  FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
 WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL"""


def _settings(pg_tls: TlsPostgres, url: str, service: str = "products") -> KitSettings:
    return KitSettings(
        service_name=service,
        database_url=url,
        db_sslmode="verify-full",
        db_ssl_root_cert=pg_tls.ca.ca_file,
        tls_identity_file=pg_tls.ca.identity_file(service),
        tls_ca_file=pg_tls.ca.ca_file,
        db_pool_min=0,
        db_pool_max=2,
        db_startup_timeout_s=5,
    )


def _serial(identity_file: Path) -> int:
    return x509.load_pem_x509_certificate(identity_file.read_bytes()).serial_number


def test_the_pool_presents_the_process_identity_and_new_connections_present_a_renewed_one(
    pg_tls: TlsPostgres,
) -> None:
    settings = _settings(pg_tls, pg_tls.add_service("products"))
    identity = tls.identity(settings)
    assert identity is not None
    serial_query = "SELECT client_serial FROM pg_stat_ssl WHERE pid = pg_backend_pid()"

    async def run() -> tuple[int, int, int]:
        db = Database(settings)
        pool = await db.connect()
        try:
            first = int(await pool.fetchval(serial_query))
            renewed = _serial(pg_tls.ca.issue("products"))
            assert identity.reload_if_changed()
            await pool.expire_connections()  # the next acquire opens a new connection
            second = int(await pool.fetchval(serial_query))
            return first, renewed, second
        finally:
            await db.close()

    first, renewed, second = asyncio.run(run())
    assert first != renewed
    assert second == renewed


def test_a_database_with_another_ca_is_not_sent_the_identity(pg_tls: TlsPostgres, tmp_path: Path) -> None:
    """The identity context is for the stack's own server (DB_SSL_ROOT_CERT is TLS_CA_FILE); a server
    verified by another bundle (RDS) gets a context of its own, without our certificate."""
    pg_tls.ca.issue("products")
    bundle = tmp_path / "rds-bundle.pem"
    bundle.write_bytes(pg_tls.ca.ca_file.read_bytes())
    ours = _settings(pg_tls, "postgresql://u:p@127.0.0.1:1/db")
    identity = tls.identity(ours)
    assert identity is not None
    assert _ssl_context(ours) is identity.client_context()
    other = _ssl_context(ours.model_copy(update={"db_ssl_root_cert": bundle}))
    assert other is not identity.client_context()


def test_a_service_process_reads_its_data_over_tls_and_no_backend_is_plaintext(
    pg_tls: TlsPostgres, stack: TestStack, keyring_jwks_url: str
) -> None:
    """products as its own process, with the settings the runner gives it on one machine: it migrates and
    serves a read, and every TCP client of the server (its pool included) is on TLS 1.3 with a certificate
    naming its role."""
    url = pg_tls.add_service("products")
    env = {
        **stack.env_for("products", database_url=url),
        "JWKS_URL": keyring_jwks_url,
        "DB_SSLMODE": "verify-full",
        "DB_SSL_ROOT_CERT": str(pg_tls.ca.ca_file),
        "TLS_IDENTITY_FILE": str(pg_tls.ca.identity_file("products")),
        "TLS_CA_FILE": str(pg_tls.ca.ca_file),
    }
    # It serves mutual TLS too (it has an identity): the test calls it with a client identity of its own.
    client = (pg_tls.ca.issue(TEST_CLIENT), pg_tls.ca.ca_file)
    proc = ServiceProcess("products", env, stack.logdir, tls=client).start()
    try:
        listing = httpx.get(
            f"{proc.url}/api/v1/products",
            params={"limit": 1},
            timeout=10,
            verify=tls.Identity(*client).client_context(),
        )
        assert listing.status_code == 200, listing.text
        rows = [line.split("|") for line in pg_tls.server.psql(CLIENT_BACKENDS).splitlines()]
        assert [r for r in rows if r[0] == "products"], rows
        assert all(ssl == "t" and version == "TLSv1.3" and dn == f"/CN={user}" for user, ssl, version, dn in rows), rows
    finally:
        proc.stop()
