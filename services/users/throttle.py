"""Login throttling per account and per client address, stored in PostgreSQL so it holds across replicas.

Only failures count, and no verdict is told before it is recorded. A login is refused at once (429) when
the account or the client is already over its failure limit, before any password is checked. Otherwise
its password is checked, and then its verdict is settled in one short transaction under two advisory
locks (the account's, then the client's) that first checks the limits again: a wrong password becomes a
failure (``login_failures``) and is answered 401; a right one clears the account's failures (its owner has
just proved the password) and logs in. A verdict that finds a limit reached by then is withheld: the
answer is the same 429 whether the password was right or wrong, and nothing is recorded.

So however many guesses run at once, at most the limit of them are answered per window, while correct
logins in flight hold nothing: they neither count as failures nor make other logins wait.

The account key is a digest of the lower-cased e-mail whether or not such an account exists, so a 429
never reveals which e-mails are registered.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import math
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

# For the account and for the client: seconds until the limit frees (the limit-th most recent failure in
# the window leaving it), or NULL when under the limit. $1 account key, $2 client, $3 window,
# $4 account limit - 1, $5 client limit - 1.
_LIMITS_REACHED = """SELECT
    (SELECT extract(epoch FROM failed_at + make_interval(secs => $3) - now()) FROM login_failures
      WHERE account_key = $1 AND failed_at > now() - make_interval(secs => $3)
      ORDER BY failed_at DESC OFFSET $4 LIMIT 1) AS account,
    (SELECT extract(epoch FROM failed_at + make_interval(secs => $3) - now()) FROM login_failures
      WHERE client_ip = $2 AND failed_at > now() - make_interval(secs => $3)
      ORDER BY failed_at DESC OFFSET $5 LIMIT 1) AS client"""


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
    """One login whose password is being checked. Settle it with ``failed()`` or ``succeeded()`` before
    telling the verdict: each raises the 429 instead when a limit was reached meanwhile. Left unsettled
    (an error, a cancelled request), it leaves nothing behind."""

    def __init__(self, throttle: Throttle, pool: asyncpg.Pool, account: bytes, client: IPAddress) -> None:
        self._throttle, self._pool = throttle, pool
        self.account, self.client = account, client

    async def failed(self) -> None:
        async with self._settling() as conn:
            await conn.execute(
                "INSERT INTO login_failures (account_key, client_ip) VALUES ($1, $2)", self.account, self.client
            )

    async def succeeded(self) -> None:
        async with self._settling() as conn:
            await conn.execute("DELETE FROM login_failures WHERE account_key = $1", self.account)

    @contextlib.asynccontextmanager
    async def _settling(self) -> AsyncIterator[PoolConnectionProxy]:
        """A transaction holding the account's and the client's locks (always in that order: no deadlock)
        in which the limits are not reached; else the 429, with nothing recorded.

        Read committed on purpose: each statement sees what was committed before it started, so the check
        after the locks sees every verdict settled by an earlier holder (PostgreSQL marks a transaction
        committed before it releases its locks: postgres REL_15 src/backend/access/transam/xact.c,
        CommitTransaction, "ProcArrayEndTransaction ... must be done _before_ releasing locks"). Under
        repeatable read the snapshot would date from the first statement, taken before its lock was
        granted, and miss them. asyncpg 0.32.0 (transaction.py) sends ISOLATION LEVEL READ COMMITTED
        for ``isolation="read_committed"``, whatever the server's default."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="read_committed"):
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_ACCOUNT, _lock_id(self.account))
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_CLIENT, _lock_id(self.client.packed))
            await self._throttle.refuse_over_limit(conn, self.account, self.client)
            yield conn


class Throttle:
    def __init__(self, settings: Settings) -> None:
        self.window = float(settings.login_failure_window_s)
        self.max_account = settings.login_max_failures_per_account
        self.max_client = settings.login_max_failures_per_client

    async def refuse_over_limit(self, conn: PoolConnectionProxy, account: bytes, client: IPAddress) -> None:
        """The 429 (``Retry-After``: when the later of the limits reached frees) when the account or the
        client has reached its failure limit in the window."""
        row = await conn.fetchrow(
            _LIMITS_REACHED, account, client, self.window, self.max_account - 1, self.max_client - 1
        )
        assert row is not None
        waits = [float(w) for w in (row["account"], row["client"]) if w is not None]
        if waits:
            retry = max(1, math.ceil(max(waits)))
            LOGINS.labels("throttled").inc()
            raise Problem(
                429,
                "Too many failed logins; try again later.",
                kind="rate-limited",
                headers={"Retry-After": str(retry)},
                retry_after_s=retry,
            )

    @contextlib.asynccontextmanager
    async def attempt(self, pool: asyncpg.Pool, account: bytes, client: IPAddress) -> AsyncIterator[Attempt]:
        """Refuse (429) when the account or client is over its failure limit, before the password is
        checked (a locked account costs no argon2 check); else the attempt, to settle inside the block
        once the password is checked. Throttled attempts are not recorded (they do not extend a lock-out)."""
        async with pool.acquire() as conn:
            await self.refuse_over_limit(conn, account, client)
        yield Attempt(self, pool, account, client)

    async def purge(self, pool: asyncpg.Pool) -> int:
        """Drop failures older than the window (they no longer count)."""
        status = await pool.execute(
            "DELETE FROM login_failures WHERE failed_at < now() - make_interval(secs => $1)", self.window
        )
        return int(status.split()[-1])
