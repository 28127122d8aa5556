"""Which address a login failure is charged to. X-Forwarded-For is client-controlled unless a proxy we
trust wrote it, so it is believed only from trusted peers, and only up to the first untrusted hop."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import Request

from services.users.throttle import client_address

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


def _request(peer: str | None, *xff: str) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"x-forwarded-for", v.encode()) for v in xff],
        "client": (peer, 1234) if peer else None,
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # untrusted peer: its header is ignored
        ("10.0.0.5", [], "10.0.0.5"),  # trusted peer without a header: the peer
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the left part is the client's own invention
        ("10.0.0.5", ["198.51.100.1, 10.0.0.7"], "198.51.100.1"),  # a chain of trusted proxies
        ("10.0.0.5", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # several header lines
        ("10.0.0.5", ["garbage"], "10.0.0.5"),
        ("10.0.0.5", ["198.51.100.1, garbage"], "10.0.0.5"),  # stop at garbage, never skip past it
        ("10.0.0.5", ["198.51.100.1:4711"], "198.51.100.1"),
        ("10.0.0.5", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("::1", ["2001:db8::2"], "2001:db8::2"),
        ("::ffff:10.0.0.5", ["198.51.100.1"], "198.51.100.1"),  # IPv4-mapped peer is the IPv4 address
        ("10.0.0.5", ["10.0.0.6, 10.0.0.7"], "10.0.0.6"),  # all trusted: the furthest one
        (None, ["198.51.100.1"], "::"),
        ("not-an-ip", ["198.51.100.1"], "::"),
    ],
)
def test_client_address(peer: str | None, xff: list[str], expected: str) -> None:
    assert str(client_address(_request(peer, *xff), TRUSTED)) == expected


def test_without_trusted_proxies_the_header_is_never_believed() -> None:
    assert str(client_address(_request("127.0.0.1", "198.51.100.1"), [])) == "127.0.0.1"
