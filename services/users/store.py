"""SQL for accounts, sessions and refresh tokens (asyncpg, plain SQL, constraints in the database)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.users.errors import EmailTaken

Conn = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    name: str
    roles: list[str]
    created_at: datetime
    password_hash: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        return cls(row["id"], row["email"], row["name"], list(row["roles"]), row["created_at"], row["password_hash"])

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "roles": self.roles,
            "created_at": self.created_at,
        }


async def create_user(pool: asyncpg.Pool, email: str, name: str, password_hash: str) -> User:
    try:
        row = await pool.fetchrow(
            "INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3)"
            " RETURNING id, email, name, roles, created_at, password_hash",
            email,
            name,
            password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise EmailTaken from None
    assert row is not None
    return User.from_row(row)


async def ensure_admin(pool: asyncpg.Pool, email: str, name: str, password_hash: str) -> bool:
    """Create the admin unless an account with that e-mail exists; True when this call created it.

    ``ON CONFLICT DO NOTHING`` on the case-insensitive unique index: two replicas starting at once both
    succeed and exactly one row exists.
    """
    status = await pool.execute(
        "INSERT INTO users (email, name, password_hash, roles) VALUES ($1, $2, $3, ARRAY['admin', 'customer'])"
        " ON CONFLICT ((lower(email))) DO NOTHING",
        email,
        name,
        password_hash,
    )
    return bool(status == "INSERT 0 1")


async def user_by_email(pool: asyncpg.Pool, email: str) -> User | None:
    row = await pool.fetchrow(
        "SELECT id, email, name, roles, created_at, password_hash FROM users WHERE lower(email) = lower($1)", email
    )
    return User.from_row(row) if row else None


async def user_by_id(conn: Conn, user_id: uuid.UUID) -> User | None:
    row = await conn.fetchrow(
        "SELECT id, email, name, roles, created_at, password_hash FROM users WHERE id = $1", user_id
    )
    return User.from_row(row) if row else None


async def update_password_hash(pool: asyncpg.Pool, user_id: uuid.UUID, old_hash: str, new_hash: str) -> None:
    """Upgrade a hash (new parameters) unless the password changed meanwhile."""
    await pool.execute(
        "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2", user_id, old_hash, new_hash
    )


async def update_profile(
    pool: asyncpg.Pool, user_id: uuid.UUID, *, name: str | None, password_hash: str | None, keep_session: uuid.UUID
) -> User | None:
    """Change the name and/or password; a password change revokes every other session of the user."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """UPDATE users SET name = coalesce($2, name), password_hash = coalesce($3, password_hash),
                       updated_at = now()
                WHERE id = $1 RETURNING id, email, name, roles, created_at, password_hash""",
            user_id,
            name,
            password_hash,
        )
        if row is None:
            return None
        if password_hash is not None:
            await conn.execute(
                """UPDATE sessions SET revoked_at = now(), revoked_reason = 'password-changed'
                   WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL""",
                user_id,
                keep_session,
            )
        return User.from_row(row)


async def user_of_session(
    pool: asyncpg.Pool, session_id: uuid.UUID, session_user: uuid.UUID, user_id: uuid.UUID
) -> tuple[bool, User | None]:
    """(whether the session is active, the user ``user_id``) in one statement: the revocation check and
    the read share a round trip."""
    row = await pool.fetchrow(
        """SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL) AS active,
                  u.id, u.email, u.name, u.roles, u.created_at, u.password_hash
           FROM (SELECT) AS one LEFT JOIN users u ON u.id = $3""",
        session_id,
        session_user,
        user_id,
    )
    assert row is not None
    return bool(row["active"]), User.from_row(row) if row["id"] is not None else None


async def session_is_active(pool: asyncpg.Pool, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await pool.fetchval(
        "SELECT true FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL", session_id, user_id
    )
    return bool(found)


async def start_session(pool: asyncpg.Pool, user_id: uuid.UUID, token_hash: bytes, ttl_s: int) -> uuid.UUID:
    async with pool.acquire() as conn, conn.transaction():
        session_id: uuid.UUID = await conn.fetchval("INSERT INTO sessions (user_id) VALUES ($1) RETURNING id", user_id)
        await conn.execute(
            """INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
               VALUES ($1, $2, now() + make_interval(secs => $3))""",
            token_hash,
            session_id,
            float(ttl_s),
        )
    return session_id


async def revoke_session(pool: asyncpg.Pool, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await pool.execute(
        """UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'
           WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL""",
        session_id,
        user_id,
    )


RefreshOutcome = Literal["rotated", "unknown", "expired", "revoked", "reused"]


@dataclass(frozen=True)
class Refreshed:
    outcome: RefreshOutcome
    user: User | None = None
    session_id: uuid.UUID | None = None


async def rotate_refresh_token(pool: asyncpg.Pool, old_hash: bytes, new_hash: bytes, ttl_s: int) -> Refreshed:
    """Exchange a refresh token for a new one, once.

    The token row is locked, so two concurrent exchanges of one token are serialised: the first rotates,
    the second sees it spent. Presenting a spent token means two parties hold it (one of them a thief):
    the whole session is revoked, and that revocation is committed even though the caller gets a 401.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """SELECT t.session_id, t.used_at, t.expires_at <= now() AS expired, s.user_id,
                      s.revoked_at IS NOT NULL AS revoked
               FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
               WHERE t.token_hash = $1 FOR UPDATE OF t, s""",
            old_hash,
        )
        if row is None:
            return Refreshed("unknown")
        session_id: uuid.UUID = row["session_id"]
        if row["revoked"]:
            return Refreshed("revoked", session_id=session_id)
        if row["used_at"] is not None:
            await conn.execute(
                """UPDATE sessions SET revoked_at = now(), revoked_reason = 'refresh-token-reuse'
                   WHERE id = $1 AND revoked_at IS NULL""",
                session_id,
            )
            return Refreshed("reused", session_id=session_id)
        if row["expired"]:
            return Refreshed("expired", session_id=session_id)
        user = await user_by_id(conn, row["user_id"])
        if user is None:  # pragma: no cover - sessions cascade with their user
            return Refreshed("unknown")
        await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", old_hash)
        await conn.execute(
            """INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
               VALUES ($1, $2, now() + make_interval(secs => $3))""",
            new_hash,
            session_id,
            float(ttl_s),
        )
        return Refreshed("rotated", user=user, session_id=session_id)


async def purge_expired(pool: asyncpg.Pool, keep_spent_s: int) -> None:
    """Drop refresh tokens long expired. Spent tokens are kept while they could still be presented
    (until they expire), so reuse is detected for as long as the token would have been valid."""
    await pool.execute(
        "DELETE FROM refresh_tokens WHERE expires_at < now() - make_interval(secs => $1)", float(keep_spent_s)
    )
