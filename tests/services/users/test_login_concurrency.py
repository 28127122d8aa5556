"""Logins in flight: correct ones never hold up or refuse each other, and parallel guesses still get at
most the limit's verdicts.

A login is "in flight" between the start of its request and the recording of its verdict. To hold logins
there on purpose, these tests swap the service's password checks for ``HeldChecks``: the check itself is
the real argon2 one, but its answer waits for the test's ``release()``. So "all 15 guesses were checked
before any was settled" is a fact the test arranges, not a race it hopes for.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from services.users.deps import get_passwords
from services.users.passwords import Passwords
from tests.services.users.support import PASSWORD, Api, assert_problem, db_fetch, new_ip, unique_email
from tests.support.inprocess import InProcessService


class HeldChecks:
    """The service's own password checks, except that the first ``hold`` of them, once done, keep their
    answer until ``release()``: logins whose verdict the service knows but has not settled yet."""

    def __init__(self, passwords: Passwords, hold: int) -> None:
        self._passwords = passwords
        self._hold = hold
        self.held = 0  # read from the test's thread; written on the app's loop only
        self._released = asyncio.Event()  # the app's loop waits on it; ``release`` sets it from there
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # orders ``release`` against the first held check

    def __getattr__(self, name: str) -> Any:
        return getattr(self._passwords, name)  # hashing and the rest: the service's own

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        ok = await self._passwords.verify(stored_hash, password)
        if self._hold > 0:  # the app's loop runs one coroutine at a time: no race on the counters
            self._hold -= 1
            with self._lock:
                self._loop = asyncio.get_running_loop()
                self.held += 1
            await self._released.wait()
        return ok

    def release(self) -> None:
        """Let every held check answer (from any thread: an asyncio.Event is set on its own loop)."""
        with self._lock:
            if self._loop is None:
                self._released.set()
            else:
                self._loop.call_soon_threadsafe(self._released.set)


@pytest.fixture
def hold_checks(usvc: InProcessService) -> Iterator[Callable[[int], HeldChecks]]:
    """``hold_checks(n)``: from now on the service's first n password checks are held (FastAPI resolves
    the override per request); the override is removed and every hold released after the test."""
    made: list[HeldChecks] = []

    def hold(n: int) -> HeldChecks:
        checks = HeldChecks(usvc.app.state.passwords, n)
        made.append(checks)
        usvc.app.dependency_overrides[get_passwords] = lambda: checks
        return checks

    try:
        yield hold
    finally:
        usvc.app.dependency_overrides.pop(get_passwords, None)
        for checks in made:
            checks.release()


def _login(client: httpx.AsyncClient, email: str, password: str, ip: str) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(
        client.post("/api/v1/sessions", json={"email": email, "password": password}, headers={"X-Forwarded-For": ip})
    )


async def _until_held_or_answered(checks: HeldChecks, tasks: list[asyncio.Task[httpx.Response]]) -> None:
    """Until every login is either held after its check or already answered (a throttle that makes
    logins wait for room answers them without a check: the loop ends either way)."""
    while checks.held + sum(t.done() for t in tasks) < len(tasks):  # noqa: ASYNC110 - counted on the app's loop
        await asyncio.sleep(0.01)


def test_correct_logins_in_flight_never_hold_up_or_refuse_other_correct_logins(
    api: Api, hold_checks: Callable[[int], HeldChecks]
) -> None:
    """Five correct logins of one account held in flight, with four failures on record (one short of the
    limit): 27 more correct logins of the account all get 201 meanwhile, then the five do too. A correct
    login in flight is not a failure, nor a reservation that others must wait for."""
    account = api.signup()
    for _ in range(4):
        assert_problem(api.login(account.email, "wrong password"), 401)
    checks = hold_checks(5)

    async def run() -> tuple[list[int], list[int]]:
        async with api.async_client(timeout=60.0) as client:
            held = [_login(client, account.email, PASSWORD, new_ip()) for _ in range(5)]
            await _until_held_or_answered(checks, held)
            assert checks.held == 5, [t.result().text for t in held if t.done()]
            others = await asyncio.gather(*(_login(client, account.email, PASSWORD, new_ip()) for _ in range(27)))
            assert not any(t.done() for t in held)  # the 27 were answered while the five were in flight
            checks.release()
            return [r.status_code for r in others], [r.status_code for r in await asyncio.gather(*held)]

    others, held = asyncio.run(run())
    assert others == [201] * 27, others
    assert held == [201] * 5, held
    for _ in range(5):  # the successes cleared the failures; the limit still holds
        assert_problem(api.login(account.email, "wrong password"), 401)
    assert_problem(api.login(account.email, PASSWORD), 429, "rate-limited")


@pytest.mark.parametrize("scope", ["account", "client"])
def test_parallel_guesses_get_at_most_the_limits_verdicts_even_when_all_are_checked_first(
    api: Api, hold_checks: Callable[[int], HeldChecks], scope: str
) -> None:
    """Limit + 10 wrong guesses at once, on one account from many addresses (limit 5) or on many unknown
    e-mails from one address (limit 20), every one of them checked before any is settled: exactly the
    limit of them are answered 401, the other 10 get 429, and only the answered ones are recorded."""
    limit = 5 if scope == "account" else 20
    email, ip = unique_email("target"), new_ip()
    guesses = [
        (email if scope == "account" else unique_email("spray"), f"guess-{i}", new_ip() if scope == "account" else ip)
        for i in range(limit + 10)
    ]
    checks = hold_checks(len(guesses))

    async def run() -> list[int]:
        async with api.async_client(timeout=60.0) as client:
            tasks = [_login(client, *guess) for guess in guesses]
            await _until_held_or_answered(checks, tasks)
            checks.release()
            return [r.status_code for r in await asyncio.gather(*tasks)]

    codes = asyncio.run(run())
    assert sorted(codes) == [401] * limit + [429] * 10, codes
    assert_problem(api.login(*guesses[0]), 429, "rate-limited")


def test_a_right_password_settling_after_the_limit_is_reached_gets_the_same_429_and_clears_nothing(
    api: Api, usvc: InProcessService, hold_checks: Callable[[int], HeldChecks]
) -> None:
    """A guesser cannot learn a verdict by racing the limit: a right password checked while the account
    was under its limit, but settled after five wrong ones were recorded, gets the 429 a wrong one gets,
    with no session started and the failures left in place."""
    from services.users.throttle import account_key

    account = api.signup()
    checks = hold_checks(1)

    async def run() -> tuple[list[httpx.Response], httpx.Response, httpx.Response]:
        async with api.async_client(timeout=60.0) as client:
            right = _login(client, account.email, PASSWORD, new_ip())
            await _until_held_or_answered(checks, [right])
            assert checks.held == 1
            wrong = [await _login(client, account.email, f"guess-{i}", new_ip()) for i in range(6)]
            checks.release()
            return wrong[:5], wrong[5], await right

    answered, refused_wrong, refused_right = asyncio.run(run())
    assert [r.status_code for r in answered] == [401] * 5, [r.text for r in answered]
    wrong_body = assert_problem(refused_wrong, 429, "rate-limited")
    right_body = assert_problem(refused_right, 429, "rate-limited")
    for body in (wrong_body, right_body):
        del body["instance"], body["request_id"], body["retry_after_s"]
    assert right_body == wrong_body
    assert 800 < int(refused_right.headers["retry-after"]) <= 900
    failures = db_fetch(
        usvc.env["DATABASE_URL"],
        "SELECT count(*) FROM login_failures WHERE account_key = $1",
        account_key(account.email),
    )
    assert failures[0][0] == 5
    sessions = db_fetch(usvc.env["DATABASE_URL"], "SELECT count(*) FROM sessions WHERE user_id = $1::uuid", account.id)
    assert sessions[0][0] == 0
    assert_problem(api.login(account.email, PASSWORD), 429, "rate-limited")
