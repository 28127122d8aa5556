"""Migrations: forward-only, applied once even when replicas start together, history never rewritten."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from services.kit import migrate
from services.runner.postgres import PostgresServer


def _fresh_db(pg: PostgresServer, name: str) -> str:
    pg.psql(f'DROP DATABASE IF EXISTS "{name}"')
    pg.psql(f'CREATE DATABASE "{name}"')
    return pg.url(name)


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, sql in files.items():
        (tmp_path / name).write_text(sql)
    return tmp_path


def test_two_replicas_starting_together_apply_each_migration_once(pg: PostgresServer, tmp_path: Path) -> None:
    """Two replicas racing at start-up must not both run a migration: a second CREATE TABLE or a doubled
    data backfill would crash one replica or corrupt data. The advisory lock serialises them."""
    url = _fresh_db(pg, "kit_migrate_race")
    folder = _write(
        tmp_path,
        {
            "0001_create.sql": "CREATE TABLE t (id int PRIMARY KEY); SELECT pg_sleep(0.3);",
            "0002_backfill.sql": "INSERT INTO t VALUES (1);",
        },
    )

    async def race() -> list[list[str]]:
        pools = [await asyncpg.create_pool(url, min_size=1, max_size=1) for _ in range(4)]
        try:
            return list(await asyncio.gather(*(migrate.apply(p, folder) for p in pools)))
        finally:
            for p in pools:
                await p.close()

    results = asyncio.run(race())
    applied = [name for result in results for name in result]
    assert sorted(applied) == ["0001_create.sql", "0002_backfill.sql"]
    assert pg.psql("SELECT count(*) FROM t", "kit_migrate_race") == "1"


def test_an_applied_migration_that_changed_is_refused(pg: PostgresServer, tmp_path: Path) -> None:
    """Editing a migration that already ran would leave databases that ran the old text silently different
    from new ones; the service must refuse to start instead."""
    url = _fresh_db(pg, "kit_migrate_edit")
    folder = _write(tmp_path, {"0001_create.sql": "CREATE TABLE t (id int);"})

    async def run() -> None:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:
            await migrate.apply(pool, folder)
            (folder / "0001_create.sql").write_text("CREATE TABLE t (id bigint);")
            with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
                await migrate.apply(pool, folder)
        finally:
            await pool.close()

    asyncio.run(run())


def test_a_failing_migration_leaves_nothing_half_applied(pg: PostgresServer, tmp_path: Path) -> None:
    """Each migration runs in one transaction with its bookkeeping row: a failure rolls back both, so the
    next start retries it cleanly."""
    url = _fresh_db(pg, "kit_migrate_fail")
    folder = _write(tmp_path, {"0001_bad.sql": "CREATE TABLE ok (id int); SELECT 1/0;"})

    async def run() -> None:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:
            with pytest.raises(asyncpg.DivisionByZeroError):
                await migrate.apply(pool, folder)
            assert await pool.fetchval("SELECT to_regclass('ok')") is None
            assert await pool.fetchval("SELECT count(*) FROM schema_migrations") == 0
        finally:
            await pool.close()

    asyncio.run(run())


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql"])
def test_misnamed_migration_files_are_rejected(tmp_path: Path, name: str) -> None:
    """Order comes from the file name; a name outside the pattern would sort unpredictably."""
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(migrate.MigrationError, match="NNNN_"):
        migrate.load(tmp_path)
