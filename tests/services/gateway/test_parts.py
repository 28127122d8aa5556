"""The gateway's building blocks on their own: the circuit breaker's state machine, the shared token
buckets' arithmetic and file handling, and the client-address rule. (The process-level tests show them
working together; these pin the edge cases that are slow or awkward to reach through HTTP.)"""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

import pytest
from starlette.requests import Request

from services.gateway.breaker import CircuitBreaker, Permit, State
from services.gateway.paths import is_clean_public_path
from services.gateway.ratelimit import Limit, SharedTokenBuckets, client_key
from services.kit.client_address import ClientAddress
from services.users.throttle import client_address


def _breaker(**overrides: float) -> CircuitBreaker:
    params: dict[str, float] = {
        "consecutive_failures": 3,
        "failure_ratio": 0.5,
        "window_s": 10.0,
        "min_requests": 10,
        "cooldown_s": 0.2,
        **overrides,
    }
    return CircuitBreaker(
        f"test-{time.monotonic_ns()}",
        consecutive_failures=int(params["consecutive_failures"]),
        failure_ratio=params["failure_ratio"],
        window_s=params["window_s"],
        min_requests=int(params["min_requests"]),
        cooldown_s=params["cooldown_s"],
    )


def _state(breaker: CircuitBreaker) -> State:
    return breaker.state  # read through a call: mypy would otherwise keep an earlier narrowing


def test_breaker_opens_on_a_failure_ratio_without_a_failure_streak() -> None:
    """Alternating success and failure never makes a streak, yet half the calls failing is an outage."""
    breaker = _breaker(consecutive_failures=100)
    for i in range(10):
        breaker.record(i % 2 == 0, breaker.allow())
    assert _state(breaker) is State.OPEN
    assert breaker.allow() is Permit.DENY


def test_half_open_lets_exactly_one_probe_through_and_ignores_stale_outcomes() -> None:
    """After the cool-down only one probe goes out; a late success from a call made before the circuit
    opened does not close it; the probe's failure re-opens it, its success closes it."""
    breaker = _breaker()
    early = breaker.allow()
    for _ in range(3):
        breaker.record(False, breaker.allow())
    assert _state(breaker) is State.OPEN
    breaker.record(True, early)  # a slow call that started while closed
    assert _state(breaker) is State.OPEN
    time.sleep(0.25)
    probe = breaker.allow()
    assert probe is Permit.PROBE
    assert breaker.allow() is Permit.DENY
    breaker.record(False, probe)
    assert _state(breaker) is State.OPEN
    time.sleep(0.25)
    probe = breaker.allow()
    breaker.record(True, probe)
    assert _state(breaker) is State.CLOSED
    assert breaker.allow() is Permit.CALL


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rl"
    directory.mkdir(mode=0o700)
    return directory


def test_bucket_refills_at_its_rate_and_says_when(state_dir: Path) -> None:
    """Burst, then refusal with the whole seconds until the next token, then a token after the refill."""
    buckets = SharedTokenBuckets(state_dir / "b.bin", 64)
    limit = Limit(per_s=5.0, burst=3)
    assert [buckets.acquire("k", limit).allowed for _ in range(3)] == [True] * 3
    refused = buckets.acquire("k", limit)
    assert not refused.allowed
    assert refused.retry_after_s == 1
    assert buckets.acquire("other", limit).allowed  # buckets are per key
    time.sleep(0.25)
    assert buckets.acquire("k", limit).allowed
    slow = Limit(per_s=0.01, burst=1)
    assert buckets.acquire("s", slow).allowed
    assert buckets.acquire("s", slow).retry_after_s == 100


def test_table_is_shared_through_the_file_and_survives_a_full_table(state_dir: Path) -> None:
    """Two openers of one file see one bucket (as two worker processes do); with more keys than slots the
    table keeps working, reusing the stalest slots."""
    a = SharedTokenBuckets(state_dir / "b.bin", 64)
    b = SharedTokenBuckets(state_dir / "b.bin", 64)
    limit = Limit(per_s=0.001, burst=2)
    assert a.acquire("shared", limit).allowed
    assert b.acquire("shared", limit).allowed
    assert not a.acquire("shared", limit).allowed
    for i in range(500):
        a.acquire(f"key-{i}", limit)
    assert a.acquire("fresh-key", limit).allowed


def test_table_outlives_no_gateway_process(state_dir: Path) -> None:
    """While any opener is alive a new one shares its buckets (a worker joining); once every opener has
    closed (a stack restart), the next one starts from full buckets instead of refusing clients for
    requests made before the restart."""
    limit = Limit(per_s=0.001, burst=1)
    first = SharedTokenBuckets(state_dir / "b.bin", 64)
    assert first.acquire("client", limit).allowed
    joining = SharedTokenBuckets(state_dir / "b.bin", 64)
    assert not joining.acquire("client", limit).allowed
    first.close()
    assert not joining.acquire("client", limit).allowed
    joining.close()
    restarted = SharedTokenBuckets(state_dir / "b.bin", 64)
    assert restarted.acquire("client", limit).allowed
    restarted.close()


def test_table_file_of_another_layout_is_reset_and_foreign_dirs_are_refused(state_dir: Path, tmp_path: Path) -> None:
    """A file left by another version (or garbage) starts empty rather than being misread; a directory
    others can write to is refused (the default lives under world-writable /dev/shm)."""
    path = state_dir / "b.bin"
    path.write_bytes(b"garbage" * 100)
    path.chmod(0o600)
    buckets = SharedTokenBuckets(path, 64)
    assert buckets.acquire("k", Limit(1.0, 1)).allowed
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(PermissionError):
        SharedTokenBuckets(open_dir / "b.bin", 64)
    link = state_dir / "link.bin"
    os.symlink(tmp_path / "elsewhere.bin", link)
    with pytest.raises(OSError):  # noqa: PT011 - ELOOP from O_NOFOLLOW
        SharedTokenBuckets(link, 64)


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "key"),
    [
        ("203.0.113.1", "1.1.1.1", "203.0.113.1"),
        ("127.0.0.1", "1.1.1.1, 2.2.2.2", "2.2.2.2"),
        ("127.0.0.1", "1.1.1.1, 2.2.2.2, 10.0.0.5", "2.2.2.2"),
        ("127.0.0.1", "1.1.1.1, not-an-ip, 10.0.0.5", "10.0.0.5"),
        ("127.0.0.1", "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", None, "2001:db8:1:2::/64"),
        # What the users service charges failed logins to, for the same request (the kit's one rule):
        ("127.0.0.1", "198.51.100.1:4711", "198.51.100.1"),
        ("127.0.0.1", "[2001:db8:1:2::1]:443", "2001:db8:1:2::/64"),
        ("::ffff:127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("::ffff:198.51.100.7", None, "198.51.100.7"),
    ],
)
def test_rate_limits_key_the_shared_client_address_and_ipv6_by_its_64(
    peer: str, forwarded_for: str | None, key: str
) -> None:
    """The gateway charges the client the users service would name (X-Forwarded-For only from a trusted
    peer, up to the first untrusted hop); IPv6 clients share a bucket per /64 (one host usually owns the
    whole /64)."""
    rule = ClientAddress([ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")])
    address = rule.resolve(peer, forwarded_for)
    assert address is not None
    assert client_key(address) == key
    if "/" not in key:
        assert str(client_address(_request(peer, forwarded_for), rule.trusted)) == key


def _request(peer: str, forwarded_for: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 1234)})


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("/api/v1/products", True),
        ("/api/v1/products/", True),
        ("/api/v1/products/8f1c-9", True),
        ("/api/v1/internals", True),
        ("/api/v1/products/..x", True),
        ("/internal", False),
        ("/x/INTERNAL/y", False),
        ("//x", False),
        ("/x/./y", False),
        ("/x/../y", False),
        ("/x/%2e%2e", False),
        ("/x\\y", False),
        ("/x/\u00fc", False),
        ("/x y", False),
        ("/x\x00", False),
        ("", False),
    ],
)
def test_path_rule(path: str, clean: bool) -> None:
    """Only plain paths pass; anything that could mean something else to a later parser does not."""
    assert is_clean_public_path(path) is clean
