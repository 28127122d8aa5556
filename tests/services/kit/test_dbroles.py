"""The role bootstrap against a real PostgreSQL: run by a non-superuser owner (like the RDS master), twice,
it leaves a login role that owns its schema and can touch nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from services import catalog
from services.kit import migrate
from services.kit.dbroles import RolePlan, app_role, apply, migration_extensions
from services.runner.postgres import PostgresServer
from tests.support.procs import free_port

MASTER, MASTER_PASSWORD = "shop_admin", "master-password"
APP_PASSWORD = "app-password-for-the-test"  # RDS uses IAM tokens (rds_iam); a plain server needs a password
SERVICES_DIR = Path(__file__).resolve().parents[3] / "services"
FIXTURE_DATABASES = ("search", "payments")


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """Passwords checked on TCP; the master is CREATEROLE but not a superuser, as on RDS."""
    pg = PostgresServer(port=free_port(), crash_unsafe_for_tests=True)
    pg.init()
    pg.start()
    pg.psql(f"CREATE ROLE {MASTER} LOGIN CREATEROLE CREATEDB PASSWORD '{MASTER_PASSWORD}'")
    for db in FIXTURE_DATABASES:
        pg.psql(f"CREATE DATABASE {db} OWNER {MASTER}")
    yield pg
    pg.destroy()


async def _connect(pg: PostgresServer, database: str, user: str, password: str) -> asyncpg.Connection:
    return await asyncpg.connect(host="127.0.0.1", port=pg.port, database=database, user=user, password=password)


async def _bootstrap(pg: PostgresServer, plan: RolePlan) -> None:
    conn = await _connect(pg, plan.database, MASTER, MASTER_PASSWORD)
    try:
        await apply(conn, plan)
    finally:
        await conn.close()


def _plan(service: str) -> RolePlan:
    return RolePlan(
        database=service,
        schema=service,
        role=app_role(service),
        extensions=migration_extensions(SERVICES_DIR / service / "migrations"),
    )


def test_search_migrations_ask_for_pg_trgm_and_the_others_for_nothing() -> None:
    found = {s.name: migration_extensions(SERVICES_DIR / s.name / "migrations") for s in catalog.database_services()}
    assert found["search"] == ("pg_trgm",)
    assert all(not v for k, v in found.items() if k != "search")


def test_bootstrap_is_idempotent_and_the_role_owns_only_its_schema(server: PostgresServer) -> None:
    async def scenario() -> None:
        search, payments = _plan("search"), _plan("payments")
        for _ in range(2):  # every deploy runs it again
            await _bootstrap(server, search)
        await _bootstrap(server, payments)
        server.psql(f"ALTER ROLE {search.role} PASSWORD '{APP_PASSWORD}'")

        app = await _connect(server, "search", search.role, APP_PASSWORD)
        try:
            # Unqualified DDL (the migrations) lands in the service's schema, and the extension is usable.
            await app.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
            await app.execute("CREATE INDEX docs_trgm ON docs USING gin (body gin_trgm_ops)")
            assert await app.fetchval("SELECT schemaname FROM pg_tables WHERE tablename = 'docs'") == "search"
            assert await app.fetchval("SELECT similarity('shoe', 'shoes')") > 0
            for denied in (
                "CREATE TABLE public.leak (x int)",
                "CREATE SCHEMA other",
                "CREATE ROLE intruder",
                "CREATE DATABASE other",
                "CREATE EXTENSION pgcrypto",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await app.execute(denied)
            attrs = await app.fetchrow(
                "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
            )
            assert attrs is not None
            assert tuple(attrs) == (False, False, False)
        finally:
            await app.close()
        # Another service's database is closed to it (CONNECT revoked from PUBLIC).
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _connect(server, "payments", search.role, APP_PASSWORD)

    asyncio.run(scenario())


def test_every_services_migrations_run_as_its_own_role(server: PostgresServer) -> None:
    """The real migrations (tables, indexes, pg_trgm for search) succeed as <service>_app after the bootstrap,
    and everything they create lands in the service's schema."""

    async def scenario() -> None:
        for svc in catalog.database_services():
            plan = _plan(svc.name)
            if plan.database not in FIXTURE_DATABASES:
                server.psql(f"CREATE DATABASE {plan.database} OWNER {MASTER}")
            await _bootstrap(server, plan)
            server.psql(f"ALTER ROLE {plan.role} PASSWORD '{APP_PASSWORD}'")
            pool = await asyncpg.create_pool(
                host="127.0.0.1",
                port=server.port,
                database=plan.database,
                user=plan.role,
                password=APP_PASSWORD,
                min_size=1,
                max_size=2,
            )
            try:
                assert await migrate.apply(pool, SERVICES_DIR / svc.name / "migrations")
                schemas = {
                    r["schemaname"]
                    for r in await pool.fetch("SELECT schemaname FROM pg_tables WHERE tableowner = current_user")
                }
                assert schemas == {svc.name}
            finally:
                await pool.close()

    asyncio.run(scenario())


def test_bootstrap_takes_back_privileges_granted_by_hand(server: PostgresServer) -> None:
    """The role is exactly what the plan says after every run, whatever someone did in between."""

    async def scenario() -> None:
        plan = _plan("payments")
        await _bootstrap(server, plan)
        server.psql(f"ALTER ROLE {plan.role} CREATEDB CREATEROLE")
        await _bootstrap(server, plan)
        flags = server.psql(f"SELECT rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = '{plan.role}'")  # noqa: S608
        assert flags == "f|f"

    asyncio.run(scenario())


def test_identifiers_are_refused_unless_plain() -> None:
    with pytest.raises(ValueError, match="identifier"):
        RolePlan(database="orders", schema="orders; DROP TABLE x", role="orders_app")
