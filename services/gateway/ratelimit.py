"""Token buckets shared by every gateway worker process on a host.

``uvicorn --workers N`` runs N processes; a limit kept in each process's memory would let a client through
N times over. The buckets therefore live in one small file mapped into every worker (``mmap``, on tmpfs
by default, so it is memory, not disk), and an exclusive ``flock`` on that file serialises the few
hundred nanoseconds of arithmetic each check needs. Why this and not the alternatives:

- a SQLite WAL file would work too, but every check is a write transaction (a journal append and a
  page write): tens of microseconds and a filesystem sync policy to tune, for a table that needs none
  of SQL's features and may be lost on reboot without harm;
- ``multiprocessing`` shared memory with a ``Lock`` needs the parent to create it before forking, and
  uvicorn's workers are spawned, not forked, from a parent we do not control;
- Redis would be the choice across hosts, but it is another moving part; across replicas the edge
  (WAF rate rules / NGINX Gateway) enforces the global limit and each replica enforces its share here.

The table is a fixed-size open-addressing hash table of ``(key hash, tokens, last refill)`` slots. Keys
are hashed with a salt kept in the file header (so nobody can aim collisions at a slot). When all probe
slots of a key are taken, the least recently touched one is reused: under that pressure a stale bucket
restarts full, which errs towards letting a request through rather than blocking an innocent client.

The table lives exactly as long as some gateway process on the host has it open: every opener holds a
shared ``flock`` on a sibling ``.live`` file for its lifetime (the kernel drops it when the process
ends, however it ends), and an opener that can take that lock exclusively is the only one alive, so it
starts from an empty table. Buckets only smooth request rates; keeping them across a restart of the
whole gateway would only keep refusing clients for requests made before it (the failure counts that
guard passwords live in the users service's database).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import ipaddress
import math
import mmap
import os
import secrets
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter

from services.gateway.paths import LOGIN_PATH, PASSWORD_SETTING
from services.gateway.settings import Settings
from services.kit.client_address import IPAddress
from services.kit.errors import Problem

RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused with 429, by limit scope", ["scope"])

_MAGIC = b"RGRLv001"
_HEADER = struct.Struct("<8sQ16s")  # magic, slot count, salt
_HEADER_SIZE = 64
_SLOT = struct.Struct("<Qdd")  # key hash (0 = empty), tokens, last refill (CLOCK_MONOTONIC, host-wide)
_PROBES = 8


def _private_dir(directory: Path) -> None:
    """The table's directory must be ours and closed to others (it may sit in world-writable /dev/shm)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PermissionError(f"{directory} must be a directory owned by this user and not writable by others")


@dataclass(frozen=True, slots=True)
class Limit:
    per_s: float
    burst: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0  # whole seconds until one token is back (for Retry-After), when not allowed


class SharedTokenBuckets:
    """Token buckets in a file mapped by every worker; safe across processes, one lock per check."""

    def __init__(self, path: Path, slots: int = 65536) -> None:
        self.slots = 1 << max(6, (slots - 1).bit_length())  # a power of two, for masking
        self.path = path
        size = _HEADER_SIZE + self.slots * _SLOT.size
        _private_dir(path.parent)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        if os.fstat(self._fd).st_uid != os.getuid():
            os.close(self._fd)
            raise PermissionError(f"{path} belongs to another user: refusing to share rate-limit state with it")
        self._live = os.open(path.with_name(path.name + ".live"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            # Under the table's lock, so no other opener can slip between the two flocks on .live.
            try:
                fcntl.flock(self._live, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            fcntl.flock(self._live, fcntl.LOCK_SH)
            if alone or os.fstat(self._fd).st_size != size or not self._header_ok():
                # No other gateway process alive, a new file, or one written with another layout: start
                # empty (every bucket full).
                os.ftruncate(self._fd, 0)
                os.ftruncate(self._fd, size)
                os.pwrite(self._fd, _HEADER.pack(_MAGIC, self.slots, secrets.token_bytes(16)), 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, size)
        _, _, self._salt = _HEADER.unpack_from(self._map, 0)

    def _header_ok(self) -> bool:
        raw = os.pread(self._fd, _HEADER.size, 0)
        if len(raw) != _HEADER.size:
            return False
        magic, slots, _ = _HEADER.unpack(raw)
        return bool(magic == _MAGIC and slots == self.slots)

    def _hash(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "little") or 1

    def acquire(self, key: str, limit: Limit) -> Decision:
        """Take one token from ``key``'s bucket if there is one."""
        h = self._hash(key)
        mask = self.slots - 1
        m = self._map
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            now = time.monotonic()
            chosen = -1
            oldest = math.inf
            tokens = float(limit.burst)
            for i in range(_PROBES):
                offset = _HEADER_SIZE + ((h + i) & mask) * _SLOT.size
                slot_key, slot_tokens, stamp = _SLOT.unpack_from(m, offset)
                if slot_key == h:
                    chosen = offset
                    if stamp <= now:  # a stamp from the future means the host rebooted: start full
                        tokens = min(float(limit.burst), slot_tokens + (now - stamp) * limit.per_s)
                    break
                if slot_key == 0:  # slots are never emptied, so the key is not further along
                    chosen = offset
                    break
                if stamp < oldest:
                    chosen, oldest = offset, stamp
            if tokens >= 1.0:
                _SLOT.pack_into(m, chosen, h, tokens - 1.0, now)
                return Decision(True)
            _SLOT.pack_into(m, chosen, h, tokens, now)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return Decision(False, max(1, math.ceil((1.0 - tokens) / limit.per_s)))

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
        os.close(self._live)


@functools.lru_cache(maxsize=65536)
def client_key(address: IPAddress) -> str:
    """The bucket a client address draws from: the address, or for IPv6 its /64 (one host usually owns the
    whole /64, and could otherwise take a fresh bucket per request)."""
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class RateLimits:
    """The gateway's four limits over one bucket table; a refusal is a 429 problem with ``Retry-After``."""

    def __init__(self, buckets: SharedTokenBuckets, settings: Settings) -> None:
        self.buckets = buckets
        self.client = Limit(settings.rate_limit_client_per_s, settings.rate_limit_client_burst)
        self.user = Limit(settings.rate_limit_user_per_s, settings.rate_limit_user_burst)
        self.login = Limit(settings.rate_limit_login_per_s, settings.rate_limit_login_burst)
        self.password = Limit(settings.rate_limit_password_per_s, settings.rate_limit_password_burst)

    def admit_client(self, client: str, method: str, path: str) -> None:
        """Every request, per client; logins and password settings, per client again on top."""
        self._take("client", client, self.client)
        if method == "POST" and path == LOGIN_PATH:
            self._take("login", client, self.login)
        elif (method, path) in PASSWORD_SETTING:
            self._take("password", client, self.password)

    def admit_user(self, user_id: str) -> None:
        """Requests with a verified token, per token subject."""
        self._take("user", user_id, self.user)

    def _take(self, scope: str, key: str, limit: Limit) -> None:
        decision = self.buckets.acquire(f"{scope}:{key}", limit)
        if not decision.allowed:
            RATE_LIMITED.labels(scope).inc()
            raise Problem(
                429,
                f"Too many requests ({scope} limit); retry after {decision.retry_after_s} s.",
                kind="rate-limited",
                scope=scope,
                headers={"Retry-After": str(decision.retry_after_s)},
            )

    def close(self) -> None:
        self.buckets.close()
