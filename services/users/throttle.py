"""Login throttling per account and per client address, stored in PostgreSQL so it holds across replicas.

Only failures count. A login first reserves room under both limits: under two short advisory locks (the
account's, then the client's) it checks that failures in the window plus attempts still in flight leave
room, and records its own attempt as in flight (``login_attempts``). A wrong password turns the attempt
into a failure (``login_failures``); a right one just removes it and clears the account's failures (its
owner has just proved the password). So N concurrent guesses cannot all slip under the limit, while N
concurrent correct logins of one account, or of many accounts behind one address, are never counted as
failures: when the in-flight attempts fill the room left, the next login waits for one of them to
settle (a few tens of milliseconds: one argon2 check) instead of being refused.

The account key is a digest of the lower-cased e-mail whether or not such an account exists, so a 429
never reveals which e-mails are registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import math
import time
from collections.abc import AsyncIterator, Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import Counter
from starlette.requests import Request

from services.kit.client_address import ClientAddress, IPAddress, IPNetwork
from services.kit.errors import Problem
from services.users.settings import Settings

LOGINS = Counter("users_logins_total", "Login attempts by outcome", ["outcome"])

# Advisory lock classes (two-int form), distinct from the kit's single-bigint migration lock.
_LOCK_ACCOUNT = 0x5553
_LOCK_CLIENT = 0x5554
_UNKNOWN_PEER = ipaddress.IPv6Address("::")

_POLL_S = 0.05

# Failures in the window, attempts in flight, and when the limit frees (the limit-th most recent failure
# leaving the window), of one account or client. $1 key, $2 window, $3 attempt timeout, $4 limit - 1.
# (The column names are the two constants below, never input.)
_SCOPE_STATE = {
    scope: f"""SELECT
        (SELECT count(*) FROM login_failures
          WHERE {column} = $1 AND failed_at > now() - make_interval(secs => $2)) AS failures,
        (SELECT count(*) FROM login_attempts
          WHERE {column} = $1 AND started_at > now() - make_interval(secs => $3)) AS pending,
        (SELECT extract(epoch FROM failed_at + make_interval(secs => $2) - now()) FROM login_failures
          WHERE {column} = $1 AND failed_at > now() - make_interval(secs => $2)
          ORDER BY failed_at DESC OFFSET $4 LIMIT 1) AS retry"""  # noqa: S608
    for scope, column in (("account", "account_key"), ("client", "client_ip"))
}


def account_key(email: str) -> bytes:
    return hashlib.sha256(email.lower().encode()).digest()


def _lock_id(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big", signed=True)


@functools.lru_cache(maxsize=16)
def _rule(trusted: tuple[IPNetwork, ...]) -> ClientAddress:
    return ClientAddress(trusted)


def client_address(request: Request, trusted: Sequence[IPNetwork]) -> IPAddress:
    """The address a login is charged to: the kit's client-address rule (the gateway's too), or ``::``
    when the peer is unknown."""
    forwarded_for = ",".join(request.headers.getlist("x-forwarded-for")) or None
    peer = request.client.host if request.client else None
    return _rule(tuple(trusted)).resolve(peer, forwarded_for) or _UNKNOWN_PEER


class Attempt:
    """One login in flight: settle it with ``failed()`` or ``succeeded()``; left unsettled (an error, a
    cancelled request) it is dropped, since its caller never learnt the verdict."""

    def __init__(
        self, throttle: Throttle, pool: asyncpg.Pool, attempt_id: int, account: bytes, client: IPAddress
    ) -> None:
        self._throttle, self._pool, self._id = throttle, pool, attempt_id
        self.account, self.client = account, client
        self.settled = False

    async def failed(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM login_attempts WHERE id = $1", self._id)
            await conn.execute(
                "INSERT INTO login_failures (account_key, client_ip) VALUES ($1, $2)", self.account, self.client
            )
        self._settle()

    async def succeeded(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM login_attempts WHERE id = $1", self._id)
            await conn.execute("DELETE FROM login_failures WHERE account_key = $1", self.account)
        self._settle()

    async def abandon(self) -> None:
        if not self.settled:
            await self._pool.execute("DELETE FROM login_attempts WHERE id = $1", self._id)
            self._settle()

    def _settle(self) -> None:
        self.settled = True
        self._throttle.wake()


class Throttle:
    def __init__(self, settings: Settings) -> None:
        self.window = float(settings.login_failure_window_s)
        self.max_account = settings.login_max_failures_per_account
        self.max_client = settings.login_max_failures_per_client
        # An attempt older than this is not in flight any more (its process died): it stops counting.
        self.attempt_timeout = float(settings.login_attempt_timeout_s)
        # How long a login waits for room before it is refused (429, Retry-After: 1).
        self.max_wait = float(settings.login_max_wait_s)
        self._settled = asyncio.Event()

    def wake(self) -> None:
        """An attempt of this process settled: waiters look again at once (others poll)."""
        self._settled.set()
        self._settled = asyncio.Event()

    async def _room(self, conn: PoolConnectionProxy, which: str, key: object, limit: int) -> tuple[int | None, bool]:
        """(seconds until the limit frees, when over it; whether in-flight attempts fill what is left)."""
        row = await conn.fetchrow(_SCOPE_STATE[which], key, self.window, self.attempt_timeout, limit - 1)
        assert row is not None
        if row["failures"] >= limit:
            return max(1, math.ceil(float(row["retry"]))), True
        return None, row["failures"] + row["pending"] >= limit

    async def _try_begin(self, pool: asyncpg.Pool, account: bytes, client: IPAddress) -> int | list[int] | None:
        """The new attempt's id; or the waits when over a limit; or None when the room is taken by
        attempts in flight."""
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_ACCOUNT, _lock_id(account))
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_CLIENT, _lock_id(client.packed))
            account_wait, account_full = await self._room(conn, "account", account, self.max_account)
            client_wait, client_full = await self._room(conn, "client", client, self.max_client)
            waits = [w for w in (account_wait, client_wait) if w]
            if waits:
                return waits
            if account_full or client_full:
                return None
            return int(
                await conn.fetchval(
                    "INSERT INTO login_attempts (account_key, client_ip) VALUES ($1, $2) RETURNING id", account, client
                )
            )

    @contextlib.asynccontextmanager
    async def attempt(self, pool: asyncpg.Pool, account: bytes, client: IPAddress) -> AsyncIterator[Attempt]:
        """Refuse (429) when the account or client is over its failure limit; else hold an attempt in
        flight while the password is checked. Throttled attempts are not recorded (they do not extend a
        lock-out)."""
        deadline = time.monotonic() + self.max_wait
        while True:
            started = await self._try_begin(pool, account, client)
            if isinstance(started, int):
                break
            if isinstance(started, list) or time.monotonic() >= deadline:
                retry = max(started) if started else 1
                LOGINS.labels("throttled").inc()
                raise Problem(
                    429,
                    "Too many failed logins; try again later.",
                    kind="rate-limited",
                    headers={"Retry-After": str(retry)},
                    retry_after_s=retry,
                )
            # Another replica's attempts settle unseen here, hence the timeout.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), _POLL_S)
        attempt = Attempt(self, pool, started, account, client)
        try:
            yield attempt
        finally:
            await attempt.abandon()

    async def purge(self, pool: asyncpg.Pool) -> int:
        """Drop failures older than the window (they no longer count) and attempts long dead."""
        await pool.execute(
            "DELETE FROM login_attempts WHERE started_at < now() - make_interval(secs => $1)", self.attempt_timeout
        )
        status = await pool.execute(
            "DELETE FROM login_failures WHERE failed_at < now() - make_interval(secs => $1)", self.window
        )
        return int(status.split()[-1])
