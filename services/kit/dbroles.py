"""Database role bootstrap: each service's own least-privilege login role, created by the RDS master user.

Run once per database by the platform (a Kubernetes Job on EKS, ``python -m services.kit.dbroles``) before
the service starts; every statement is idempotent, so it runs again on every deploy without harm. It leaves:

- a role ``<service>_app`` that can LOG IN and nothing else: no superuser, no CREATEDB, no CREATEROLE;
- a schema named after the service, OWNED by that role, and the role's ``search_path`` set to it, so the
  service's unqualified migrations create their tables there;
- ``CONNECT``/``TEMPORARY`` on its database for that role only (``PUBLIC`` loses them), and no ``CREATE``
  on the ``public`` schema for anyone;
- on RDS, membership of ``rds_iam``: the role then authenticates with IAM tokens only
  (``rds-db:connect`` in the service's IRSA policy), so no database password exists for it at all;
- the extensions the service's migrations ask for (``CREATE EXTENSION IF NOT EXISTS x``), created by the
  master in the service's schema, because only the database owner may create even trusted extensions.

The master credential (the RDS-managed secret) is read only here, by the Job's own service account.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_EXTENSION = re.compile(r"CREATE\s+EXTENSION\s+IF\s+NOT\s+EXISTS\s+\"?([a-z0-9_]+)\"?", re.IGNORECASE)
# RDS's role for IAM database authentication; absent on a plain PostgreSQL (tests, kind).
RDS_IAM_ROLE = "rds_iam"


def app_role(service: str) -> str:
    """The login role of one service: its name plus ``_app`` (PostgreSQL identifiers, no quoting needed)."""
    return f"{service}_app"


def migration_extensions(migrations_dir: Path) -> tuple[str, ...]:
    """The extensions a service's migrations create (each must be created by the database owner first)."""
    found = {
        m.group(1).lower() for f in sorted(migrations_dir.glob("*.sql")) for m in _EXTENSION.finditer(f.read_text())
    }
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class RolePlan:
    """What one database gets: its name, the service's schema and role, and the extensions to create."""

    database: str
    schema: str
    role: str
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for label, value in (
            ("database", self.database),
            ("schema", self.schema),
            ("role", self.role),
            *(("extension", e) for e in self.extensions),
        ):
            if not _IDENT.match(value):
                raise ValueError(f"{label} {value!r} is not a plain lowercase identifier")

    def statements(self) -> list[str]:
        """Idempotent SQL, run by the database owner (the RDS master: CREATEROLE, not a superuser)."""
        role, schema, db = self.role, self.schema, self.database
        return [
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} LOGIN; END IF; END $$",
            # Whatever was granted by hand, the role is back to this. (SUPERUSER, REPLICATION, BYPASSRLS only
            # a superuser can give or take; RDS has none, so nobody can give them.)
            f"ALTER ROLE {role} LOGIN NOCREATEDB NOCREATEROLE",
            # The master must be able to SET ROLE to hand over the schema (CREATE SCHEMA ... AUTHORIZATION);
            # on PostgreSQL 16+ a role's creator holds ADMIN on it and may grant this to itself.
            f"GRANT {role} TO CURRENT_USER",
            f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{RDS_IAM_ROLE}') THEN "
            f"GRANT {RDS_IAM_ROLE} TO {role}; END IF; END $$",
            f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
            f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}",
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}",
            f"ALTER SCHEMA {schema} OWNER TO {role}",
            f"ALTER ROLE {role} IN DATABASE {db} SET search_path = {schema}",
            *(f"CREATE EXTENSION IF NOT EXISTS {ext} WITH SCHEMA {schema}" for ext in self.extensions),
        ]


async def apply(conn: asyncpg.Connection, plan: RolePlan) -> None:
    """Run the plan in one transaction: a failure half-way leaves the database as it was."""
    async with conn.transaction():
        for statement in plan.statements():
            await conn.execute(statement)


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"dbroles: {name} is not set")
    return value


def _master_credentials(secret_arn: str, region: str) -> tuple[str, str]:
    import boto3

    doc = json.loads(
        boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)["SecretString"]
    )
    return str(doc["username"]), str(doc["password"])


async def _run(argv: Iterable[str]) -> None:
    del argv
    plan = RolePlan(
        database=_env("DB_NAME"),
        schema=_env("DB_SCHEMA"),
        role=_env("DB_APP_ROLE"),
        extensions=tuple(e for e in os.environ.get("DB_EXTENSIONS", "").split(",") if e),
    )
    user, password = _master_credentials(_env("DB_MASTER_SECRET_ARN"), _env("AWS_REGION"))
    context = ssl.create_default_context(cafile=_env("DB_SSL_ROOT_CERT"))
    conn = await asyncpg.connect(
        host=_env("DB_HOST"),
        port=int(os.environ.get("DB_PORT", "5432")),
        database=plan.database,
        user=user,
        password=password,
        ssl=context,
        timeout=10,
    )
    try:
        await apply(conn, plan)
    finally:
        await conn.close()
    print(
        json.dumps(
            {
                "event": "db_roles_applied",
                "database": plan.database,
                "role": plan.role,
                "schema": plan.schema,
                "extensions": list(plan.extensions),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1:]))
