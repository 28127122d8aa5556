"""Forward-only SQL migrations applied at start-up under a PostgreSQL advisory lock.

Files are ``NNNN_description.sql`` in a service's ``migrations/`` folder, applied in order, each in its
own transaction together with its row in ``schema_migrations``. Two replicas starting at once queue on
the advisory lock: the second finds everything applied and does nothing. An applied file whose content
changed is refused (checksum), because a migration that already ran is history, not a draft.

Why not Alembic or yoyo: both need a synchronous driver (SQLAlchemy, psycopg) beside asyncpg, and the
services keep plain SQL anyway; this file is the whole runner.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# A fixed, project-wide key: every replica of a service competes for the same lock in its own database.
_LOCK_KEY = 0x5E7A11


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def load(directory: Path) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lowercase_words.sql")
        migrations.append(Migration(match.group(1), path.name, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return migrations


async def apply(pool: asyncpg.Pool, directory: Path) -> list[str]:
    """Apply pending migrations; return the names applied by this call."""
    migrations = load(directory)
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")}
            for m in migrations:
                row = done.get(m.version)
                if row is not None:
                    if row["checksum"] != m.checksum:
                        raise MigrationError(
                            f"migration {m.name} was changed after it was applied; add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        m.version,
                        m.name,
                        m.checksum,
                    )
                applied_now.append(m.name)
                log.info("migration applied", extra={"event": "migration_applied", "migration": m.name})
            unknown = set(done) - {m.version for m in migrations}
            if unknown:
                # The database is newer than this build (an image rollback mid-rollout). Migrations are
                # written expand-then-contract, so older code still works: say so, do not block start-up.
                log.warning(
                    "database has migrations this build does not know",
                    extra={"event": "migration_ahead", "versions": sorted(unknown)},
                )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
