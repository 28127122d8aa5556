"""The embedded PostgreSQL of the one-machine stack keeps what it acknowledged and lets in only those
who hold its password."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runner import stack
from services.runner.layout import Layout
from services.runner.postgres import PostgresServer
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
    """Any local OS user could otherwise connect as the superuser (trust), over TCP or the socket."""
    host = "127.0.0.1" if via == "tcp" else str(runner_pg.socket_dir)
    refused = _psql_without_password(runner_pg, host)
    assert refused.returncode != 0
    assert "no password supplied" in refused.stderr or "password authentication failed" in refused.stderr
    assert runner_pg.psql("SELECT current_user") == "postgres"  # with the password file


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
