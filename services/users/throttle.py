"""Login throttling per account and per client address, stored in PostgreSQL so it holds across replicas.

Every login attempt first records a (provisional) failure under two short advisory locks, one for the
account and one for the client, after checking that neither is over its limit. Checking and recording in
one locked step means N concurrent guesses cannot all slip under the limit together. A successful login
removes its own provisional row and clears the account's failures (its owner has just proved the
password); the client's failures stay until they age out of the window.

The account key is a digest of the lower-cased e-mail whether or not such an account exists, so a 429
never reveals which e-mails are registered.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import Counter
from starlette.requests import Request

from services.kit.errors import Problem
from services.users.settings import IPNetwork, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOGINS = Counter("users_logins_total", "Login attempts by outcome", ["outcome"])

# Advisory lock classes (two-int form), distinct from the kit's single-bigint migration lock.
_LOCK_ACCOUNT = 0x5553
_LOCK_CLIENT = 0x5554
_UNKNOWN_PEER = ipaddress.IPv6Address("::")

_NTH_RECENT_FAILURE = {
    "account": """SELECT extract(epoch FROM failed_at + make_interval(secs => $2) - now())
                  FROM login_failures WHERE account_key = $1 AND failed_at > now() - make_interval(secs => $2)
                  ORDER BY failed_at DESC OFFSET $3 LIMIT 1""",
    "client": """SELECT extract(epoch FROM failed_at + make_interval(secs => $2) - now())
                 FROM login_failures WHERE client_ip = $1 AND failed_at > now() - make_interval(secs => $2)
                 ORDER BY failed_at DESC OFFSET $3 LIMIT 1""",
}


def account_key(email: str) -> bytes:
    return hashlib.sha256(email.lower().encode()).digest()


def _lock_id(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big", signed=True)


def _normalise(addr: IPAddress) -> IPAddress:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _parse(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return _normalise(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_address(request: Request, trusted: Sequence[IPNetwork]) -> IPAddress:
    """The client's address: the peer, or, when the peer is a trusted proxy, the right-most address in
    X-Forwarded-For that is not itself a trusted proxy (entries left of it are client-controlled)."""
    peer = _parse(request.client.host) if request.client else None
    addr = peer or _UNKNOWN_PEER

    def is_trusted(a: IPAddress) -> bool:
        return any(a.version == net.version and a in net for net in trusted)

    if not trusted or not is_trusted(addr):
        return addr
    hops = [h for value in request.headers.getlist("x-forwarded-for") for h in value.split(",")]
    for hop in reversed(hops):
        parsed = _parse(hop)
        if parsed is None:
            break  # garbage: do not look further left, trust what we have
        addr = parsed
        if not is_trusted(parsed):
            break
    return addr


class Throttle:
    def __init__(self, settings: Settings) -> None:
        self.window = float(settings.login_failure_window_s)
        self.max_account = settings.login_max_failures_per_account
        self.max_client = settings.login_max_failures_per_client

    async def _retry_after(self, conn: PoolConnectionProxy, which: str, key: object, limit: int) -> int | None:
        seconds = await conn.fetchval(_NTH_RECENT_FAILURE[which], key, self.window, limit - 1)
        if seconds is None:
            return None
        return max(1, math.ceil(float(seconds)))

    async def begin_attempt(self, pool: asyncpg.Pool, account: bytes, client: IPAddress) -> int:
        """Refuse (429) when the account or client is over its limit; else record a provisional failure
        and return its id. Raises before recording anything, so throttled attempts do not extend a lock-out."""
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_ACCOUNT, _lock_id(account))
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_CLIENT, _lock_id(client.packed))
            waits = [w for w in (await self._retry_after(conn, "account", account, self.max_account),
                                 await self._retry_after(conn, "client", client, self.max_client)) if w]
            if not waits:
                return int(await conn.fetchval(
                    "INSERT INTO login_failures (account_key, client_ip) VALUES ($1, $2) RETURNING id",
                    account, client))
        LOGINS.labels("throttled").inc()
        retry = max(waits)
        raise Problem(429, "Too many failed logins; try again later.", kind="rate-limited",
                      headers={"Retry-After": str(retry)}, retry_after_s=retry)

    async def succeeded(self, pool: asyncpg.Pool, attempt_id: int, account: bytes) -> None:
        await pool.execute("DELETE FROM login_failures WHERE id = $1 OR account_key = $2", attempt_id, account)

    async def purge(self, pool: asyncpg.Pool) -> int:
        """Drop failures older than the window (they no longer count)."""
        status = await pool.execute(
            "DELETE FROM login_failures WHERE failed_at < now() - make_interval(secs => $1)", self.window)
        return int(status.split()[-1])
