"""argon2id password hashing, off the event loop and bounded in concurrency.

Each hash takes ``argon2_memory_kib`` of RAM and tens of milliseconds of CPU, so it runs in a worker
thread (``asyncio.to_thread``) behind a semaphore: the loop keeps serving, and a burst of logins cannot
allocate unbounded memory. An unknown e-mail is checked against a dummy hash made with the same
parameters, so it costs the same time as a wrong password and the answer gives nothing away.

New passwords (sign-up, password change, hash upgrade) are the cheap way to make the service hash: they
get at most ``new_password_hash_concurrency`` of the slots and a short queue, and beyond it ``Busy`` at
once, so a sign-up flood neither starves logins of slots nor builds a queue that keeps the cores busy.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.users.settings import Settings


class Busy(Exception):
    """Too many new passwords are being hashed; the caller should come back in a second."""


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(settings.hash_concurrency)
        self._new_slots = asyncio.Semaphore(settings.new_password_hash_concurrency)
        self._new_room = settings.new_password_hash_concurrency + settings.new_password_queue_max
        self._new_pending = 0
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        """The hash of a new password; ``Busy`` at once when the new-password queue is full."""
        if self._new_pending >= self._new_room:
            raise Busy
        self._new_pending += 1
        try:
            async with self._new_slots, self._slots:
                return await asyncio.to_thread(self._hasher.hash, password)
        finally:
            self._new_pending -= 1

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; with no stored hash, burn the same time and say no."""
        if stored_hash is None:
            await self._check(await self._dummy_hash(), password)
            return False
        return await self._check(stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    async def _check(self, stored_hash: str, password: str) -> bool:
        async with self._slots:
            try:
                return await asyncio.to_thread(self._hasher.verify, stored_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(24))
        return self._dummy

    async def warm_up(self) -> None:
        """Make the dummy hash at start-up so the first unknown-e-mail login is not slower than others."""
        await self._dummy_hash()
