"""The embedded PostgreSQL with TLS admits a TCP client only over TLS 1.3, with the role's password and a
certificate from the stack's CA issued to that role; a renewed server certificate is served after a reload."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography import x509

from services.runner.tls import LocalCA
from tests.support.pgtls import TlsPostgres


@pytest.fixture(scope="module")
def products_url(pg_tls: TlsPostgres) -> str:
    pg_tls.ca.issue("orders")  # another service's identity, for the mismatch
    return pg_tls.add_service("products")


def _connect(url: str, ssl_arg: ssl.SSLContext | bool) -> Any:
    async def attempt() -> Any:
        conn = await asyncpg.connect(url, ssl=ssl_arg, timeout=10)
        try:
            return await conn.fetchrow(
                "SELECT ssl, version, client_dn, current_user AS role FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
        finally:
            await conn.close()

    return asyncio.run(attempt())


def _psql(pg_tls: TlsPostgres, url: str, *options: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(
        [str(pg_tls.server.bindir / "psql"), "-X", "-w", "-At", "-c", "SELECT 1", f"{url}?{'&'.join(options)}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _logged_since(pg_tls: TlsPostgres, offset: int, line: str) -> bool:
    """Whether the server's log says ``line`` after ``offset`` (it may write it just after the client saw the
    connection end)."""
    deadline = time.monotonic() + 5
    while line not in pg_tls.server.logfile.read_text()[offset:] and time.monotonic() < deadline:
        time.sleep(0.05)
    return line in pg_tls.server.logfile.read_text()[offset:]


def test_the_service_with_its_own_identity_gets_in_over_tls_1_3(pg_tls: TlsPostgres, products_url: str) -> None:
    row = _connect(products_url, pg_tls.client_context("products"))
    assert (row["ssl"], row["version"], row["client_dn"], row["role"]) == (True, "TLSv1.3", "/CN=products", "products")


def test_plaintext_tcp_is_refused_even_with_the_password(pg_tls: TlsPostgres, products_url: str) -> None:
    """Nothing crosses the loopback in the clear: no pg_hba.conf line admits a TCP client without TLS."""
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        _connect(products_url, False)
    refused = _psql(pg_tls, products_url, "sslmode=disable")
    assert refused.returncode != 0
    assert 'no pg_hba.conf entry for host "127.0.0.1", user "products"' in refused.stderr
    assert "no encryption" in refused.stderr


def test_tls_without_a_client_certificate_is_refused(pg_tls: TlsPostgres, products_url: str) -> None:
    """The password alone is not enough: whoever holds a leaked role password still needs the role's key."""
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="valid client certificate"):
        _connect(products_url, pg_tls.client_context(None))
    refused = _psql(pg_tls, products_url, "sslmode=verify-full", f"sslrootcert={pg_tls.ca.ca_file}")
    assert refused.returncode != 0
    assert "connection requires a valid client certificate" in refused.stderr


def test_a_certificate_from_another_ca_is_refused(pg_tls: TlsPostgres, products_url: str, tmp_path: Path) -> None:
    """A certificate naming the role, but not issued by the stack's CA, fails the handshake (in TLS 1.3 the
    client learns it from the server's alert after its own side finished, so the connection just ends)."""
    foreign = LocalCA(tmp_path / "ca", tmp_path / "identities")
    ctx = pg_tls.client_context(None)
    ctx.load_cert_chain(foreign.issue("products"))
    logged = len(pg_tls.server.logfile.read_text())
    with pytest.raises((ssl.SSLError, ConnectionError, asyncpg.ConnectionDoesNotExistError)):
        _connect(products_url, ctx)
    assert _logged_since(pg_tls, logged, "certificate verify failed")
    refused = _psql(
        pg_tls,
        products_url,
        "sslmode=verify-full",
        f"sslrootcert={pg_tls.ca.ca_file}",
        f"sslcert={foreign.identity_file('products')}",
        f"sslkey={foreign.identity_file('products')}",
    )
    assert refused.returncode != 0
    assert "certificate verify failed" in refused.stderr or "unknown ca" in refused.stderr


def test_another_services_identity_is_refused_for_this_role(pg_tls: TlsPostgres, products_url: str) -> None:
    """orders' certificate is genuine but names orders: PostgreSQL compares its common name with the role
    (clientcert=verify-full), so one service's key opens no other service's database, password or not."""
    logged = len(pg_tls.server.logfile.read_text())
    with pytest.raises(asyncpg.InvalidPasswordError):
        _connect(products_url, pg_tls.client_context("orders"))
    assert _logged_since(pg_tls, logged, 'failed for user "products": CN mismatch')


def test_the_certificate_without_the_password_is_refused(pg_tls: TlsPostgres, products_url: str) -> None:
    """Two factors: the role's key alone (a stolen identity file) does not get in either."""
    without_password = products_url.replace(":products-password@", ":wrong@")
    assert without_password != products_url
    with pytest.raises(asyncpg.InvalidPasswordError):
        _connect(without_password, pg_tls.client_context("products"))


def test_a_client_limited_to_tls_1_2_is_refused(pg_tls: TlsPostgres, products_url: str) -> None:
    ctx = pg_tls.client_context("products")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError, asyncpg.ConnectionDoesNotExistError)):
        _connect(products_url, ctx)


def test_the_admins_socket_needs_the_password_only(pg_tls: TlsPostgres) -> None:
    """The runner administers the server through its socket, which is no network hop and sits in a directory
    only the server's OS user can enter."""
    assert pg_tls.server.psql("SELECT current_user") == "postgres"


def test_after_a_renewal_and_a_reload_new_connections_get_the_new_certificate(
    pg_tls: TlsPostgres, products_url: str
) -> None:
    """The runner renews the server's identity while it runs; reload_identity makes PostgreSQL serve it,
    and a connection opened before keeps working."""
    before = pg_tls.server_certificate().serial_number

    def renew_and_reload() -> int:
        renewed = pg_tls.ca.issue("postgres", pg_tls.server.identity_owner())
        serial = x509.load_pem_x509_certificate(renewed.read_bytes()).serial_number
        pg_tls.server.reload_identity()
        deadline = time.monotonic() + 10  # the reload is a signal: the postmaster acts on it shortly after
        while pg_tls.server_certificate().serial_number != serial and time.monotonic() < deadline:
            time.sleep(0.1)
        return serial

    async def scenario() -> int:
        kept = await asyncpg.connect(products_url, ssl=pg_tls.client_context("products"), timeout=10)
        try:
            serial = await asyncio.to_thread(renew_and_reload)
            assert await kept.fetchval("SELECT 1") == 1
            return serial
        finally:
            await kept.close()

    serial = asyncio.run(scenario())
    assert serial != before
    assert pg_tls.server_certificate().serial_number == serial
    # And a client verifying against the CA still gets in, with its own identity.
    assert _connect(products_url, pg_tls.client_context("products"))["ssl"] is True
