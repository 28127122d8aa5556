"""The embedded PostgreSQL of the one-machine stack keeps what it acknowledged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runner import stack
from services.runner.layout import Layout
from services.runner.postgres import PostgresServer

OFFSET = 23500  # 5433 + 23500: below the ephemeral port range, away from the other tests' offsets


@pytest.fixture
def runner_pg(tmp_path: Path) -> Iterator[PostgresServer]:
    """The server exactly as `up` configures it (an embedded one: the port offset skips any :5432)."""
    db = stack.resolve_database(Layout(tmp_path, OFFSET), {})
    assert db.embedded is not None
    db.embedded.init()
    db.embedded.start()
    yield db.embedded
    db.embedded.destroy()


def test_the_stacks_database_flushes_every_commit_to_disk(runner_pg: PostgresServer) -> None:
    """fsync, synchronous_commit and full_page_writes off would let a crash lose an order already
    answered 201 `confirmed`; the stack's server keeps PostgreSQL's safe settings."""
    assert not runner_pg.crash_unsafe_for_tests
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        assert runner_pg.psql(f"SHOW {setting}") == "on", setting


def test_the_crash_unsafe_mode_is_an_explicit_opt_in() -> None:
    """Only a caller that names it gets a server that may lose commits."""
    assert PostgresServer(port=1, datadir=Path("/nonexistent")).crash_unsafe_for_tests is False
