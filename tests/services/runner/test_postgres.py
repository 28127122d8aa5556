"""The embedded PostgreSQL of the one-machine stack keeps what it acknowledged and lets in only those
who hold its password."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import catalog
from services.deploy.keyring import KeyRing
from services.runner import stack, tls
from services.runner.layout import Layout
from services.runner.postgres import PostgresServer, ServerTLS
from tests.support.procs import free_port

OFFSET = 23500  # 5433 + 23500: below the ephemeral port range, away from the other tests' offsets


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return Layout(tmp_path_factory.mktemp("run"), OFFSET)


@pytest.fixture(scope="module")
def runner_pg(layout: Layout) -> Iterator[PostgresServer]:
    """The server exactly as `up` configures it (an embedded one: the port offset skips any :5432)."""
    stack.ensure_shared_dir(layout)
    db = stack.resolve_database(layout, {})
    assert db.embedded is not None
    # What `up` issues before the server starts (``plan``), the server's own identity being all it reads.
    tls.LocalCA(layout.tls, layout.identities).issue("postgres", db.embedded.identity_owner())
    db.embedded.init()
    db.embedded.start()
    yield db.embedded
    db.embedded.destroy()
    if layout.shared != layout.run_dir:
        shutil.rmtree(layout.shared, ignore_errors=True)


def test_the_stacks_database_flushes_every_commit_to_disk(runner_pg: PostgresServer) -> None:
    """fsync, synchronous_commit and full_page_writes off would let a crash lose an order already
    answered 201 `confirmed`; the stack's server keeps PostgreSQL's safe settings."""
    assert not runner_pg.crash_unsafe_for_tests
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        assert runner_pg.psql(f"SHOW {setting}") == "on", setting


def test_the_crash_unsafe_mode_is_an_explicit_opt_in() -> None:
    """Only a caller that names it gets a server that may lose commits."""
    assert PostgresServer(port=1, datadir=Path("/nonexistent")).crash_unsafe_for_tests is False


def _psql_without_password(server: PostgresServer, host: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = "/nonexistent"  # not ~/.pgpass either
    return subprocess.run(
        [
            str(server.bindir / "psql"),
            "-X",
            "-w",
            "-h",
            host,
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "SELECT 1",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("via", ["tcp", "socket"])
def test_a_client_without_the_password_is_refused(runner_pg: PostgresServer, via: str) -> None:
    """Any local OS user could otherwise connect as the superuser (trust), over TCP or the socket. Over TCP
    a client without a certificate is turned away even before its password is asked for
    (``test_postgres_tls.py`` shows a certificate is not enough without the password)."""
    host = "127.0.0.1" if via == "tcp" else str(runner_pg.socket_dir)
    refused = _psql_without_password(runner_pg, host)
    assert refused.returncode != 0
    expected = (
        ["connection requires a valid client certificate", "no encryption"]
        if via == "tcp"
        else ["no password supplied", "password authentication failed"]
    )
    assert any(reason in refused.stderr for reason in expected), refused.stderr
    assert runner_pg.psql("SELECT current_user") == "postgres"  # with the password file


def test_the_stacks_server_takes_tcp_clients_over_tls_1_3_only(runner_pg: PostgresServer, layout: Layout) -> None:
    """`up`'s embedded server: its certificate is the `postgres` identity from the stack's CA, readable by
    the server's OS user alone, and no pg_hba.conf line admits TCP without TLS."""
    assert runner_pg.tls == ServerTLS(layout.identities / "postgres.pem", layout.identities / "ca.pem")
    assert runner_pg.psql("SHOW ssl") == "on"
    assert runner_pg.psql("SHOW ssl_min_protocol_version") == "TLSv1.3"
    assert (
        runner_pg.psql("SHOW ssl_cert_file") == runner_pg.psql("SHOW ssl_key_file") == str(runner_pg.tls.identity_file)
    )
    identity = runner_pg.tls.identity_file.stat()
    assert stat.S_IMODE(identity.st_mode) == 0o400
    assert identity.st_uid == (os.geteuid() if runner_pg.os_user is None else pwd.getpwnam(runner_pg.os_user).pw_uid)
    rules = runner_pg.psql("SELECT type, auth_method, options FROM pg_hba_file_rules").splitlines()
    assert rules == [
        "local|scram-sha-256|",
        "hostssl|scram-sha-256|{clientcert=verify-full}",
        "hostssl|scram-sha-256|{clientcert=verify-full}",
    ]


def test_each_service_on_the_embedded_server_is_told_to_present_its_identity(
    runner_pg: PostgresServer, layout: Layout
) -> None:
    """The runner's settings for a service that owns a database: its role's URL over TCP, the server verified
    against the stack's CA, and its own identity (whose common name is the role) as client certificate."""
    db = stack.resolve_database(layout, {})
    for svc in catalog.SERVICES:
        env = stack.service_env(layout, svc.name, {}, db)
        secrets = stack.service_secrets(svc.name, KeyRing.generate(), db, stack.Admin("a@b.c", "pw", False))
        # Every service has its identity (its HTTP hops are mutual TLS too); only database owners verify one.
        assert env["TLS_IDENTITY_FILE"] == str(layout.identities / f"{svc.name}.pem")
        if not svc.owns_database:
            assert not {"DB_SSLMODE", "DB_SSL_ROOT_CERT"} & env.keys(), svc.name
            continue
        assert secrets["database_url"].startswith(f"postgresql://{svc.database_name}:")
        assert secrets["database_url"].endswith(f"@127.0.0.1:{layout.postgres_embedded}/{svc.database_name}")
        assert env["DB_SSLMODE"] == "verify-full"
        assert env["DB_SSL_ROOT_CERT"] == env["TLS_CA_FILE"] == str(layout.identities / "ca.pem")
        assert env["TLS_IDENTITY_FILE"] == str(layout.identities / f"{svc.database_name}.pem")


def test_a_database_the_caller_names_keeps_the_callers_settings(layout: Layout) -> None:
    """A DATABASE_URL is the caller's server, with the caller's TLS settings (or none): the runner adds none."""
    db = stack.resolve_database(layout, {"DATABASE_URL": "postgresql://app:pw@db.example:5432/postgres"})
    caller = {"DB_SSLMODE": "verify-full", "DB_SSL_ROOT_CERT": "/etc/ssl/their-ca.pem"}
    env = stack.service_env(layout, "products", dict(caller), db)
    assert {k: env[k] for k in caller} == caller
    # The service still has its identity, for its HTTP hops; the pool presents it only to a server verified
    # by the stack's own CA (services.kit.db), which theirs is not.
    assert env["TLS_CA_FILE"] != caller["DB_SSL_ROOT_CERT"]
    assert db.settings_for(catalog.get("products")) == {"DATABASE_URL": "postgresql://app:pw@db.example:5432/products"}


def test_the_password_is_kept_where_only_its_owner_reads_it(runner_pg: PostgresServer, layout: Layout) -> None:
    """A generated secret, in the run directory, mode 0600; the socket's directory is private too."""
    assert runner_pg.passfile == layout.postgres_passfile
    assert stat.S_IMODE(runner_pg.passfile.stat().st_mode) == 0o600
    assert len(runner_pg.password) >= 32
    assert stat.S_IMODE(runner_pg.socket_dir.stat().st_mode) == 0o700


def test_a_new_cluster_beside_a_kept_password_file_gets_that_password(tmp_path: Path) -> None:
    """Removing the data directory but not the run directory's secrets (a database reset) must not leave
    a superuser without a password, whom no client could then log in as."""
    passfile = tmp_path / "secrets" / "postgres.pgpass"
    first = PostgresServer(port=free_port(), passfile_path=passfile, crash_unsafe_for_tests=True)
    first.init()
    password = first.password
    shutil.rmtree(first.datadir)
    second = PostgresServer(port=first.port, passfile_path=passfile, crash_unsafe_for_tests=True)
    second.init()
    second.start()
    try:
        assert second.password == password
        assert second.psql("SELECT current_user") == "postgres"
    finally:
        second.destroy()


def test_a_service_whose_role_cannot_be_its_certificates_name_is_refused_at_up(
    runner_pg: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hyphenated service's role is underscored (identity names have no underscore): PostgreSQL would
    refuse its certificate, and no user-name map exists for scram-sha-256 lines, so `up` says so first."""
    gift_cards = catalog.Service(
        name="gift-cards", port=8007, owns_database=True, description="test-only", public_prefixes=("/api/v1/gc",)
    )
    monkeypatch.setattr(catalog, "SERVICES", (*catalog.SERVICES, gift_cards))
    with pytest.raises(stack.StackError, match="gift-cards: its database role gift_cards must be"):
        stack.identities(stack.Database(None, "embedded", runner_pg))
