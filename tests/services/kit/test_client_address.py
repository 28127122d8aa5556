"""The one client-address rule the gateway and the users service share. X-Forwarded-For is written by the
client unless a proxy we trust wrote it, so it is believed only from a trusted peer, and only up to the
first hop that is not a trusted proxy."""

from __future__ import annotations

import ipaddress
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import ValidationError

from services.gateway.settings import Settings as GatewaySettings
from services.kit.client_address import ClientAddress, parse_address
from services.users.settings import Settings as UsersSettings

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # a spoofed header from an untrusted peer is ignored
        ("203.0.113.9", None, "203.0.113.9"),
        ("10.0.0.5", None, "10.0.0.5"),  # trusted peer without a header: the peer
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.5", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # left of the client: the client's invention
        ("10.0.0.5", "6.6.6.6,198.51.100.1", "198.51.100.1"),  # two header lines, joined
        ("10.0.0.5", "198.51.100.1, 10.0.0.7", "198.51.100.1"),  # a chain of trusted proxies, walked right-to-left
        ("10.0.0.5", "10.0.0.6, 10.0.0.7", "10.0.0.6"),  # all trusted: the furthest one
        ("10.0.0.5", "garbage", "10.0.0.5"),
        ("10.0.0.5", "198.51.100.1, garbage, 10.0.0.7", "10.0.0.7"),  # stop at garbage, never skip past it
        ("10.0.0.5", "198.51.100.1, , 10.0.0.7", "10.0.0.7"),  # an empty entry is garbage too
        ("10.0.0.5", "198.51.100.1:4711", "198.51.100.1"),  # entries may carry a port
        ("10.0.0.5", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.5", "[2001:db8::1]", "2001:db8::1"),
        ("::1", "2001:db8::2", "2001:db8::2"),
        ("::ffff:10.0.0.5", "198.51.100.1", "198.51.100.1"),  # an IPv4-mapped peer is its IPv4 address
        ("10.0.0.5", "::ffff:198.51.100.1", "198.51.100.1"),
        ("203.0.113.9", "10.0.0.7", "203.0.113.9"),  # naming a trusted proxy does not make it one
    ],
)
def test_the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy(
    peer: str, forwarded_for: str | None, client: str
) -> None:
    assert str(ClientAddress(TRUSTED).resolve(peer, forwarded_for)) == client


def test_without_trusted_proxies_the_header_is_never_believed() -> None:
    rule = ClientAddress([])
    assert str(rule.resolve("127.0.0.1", "198.51.100.1")) == "127.0.0.1"
    assert not rule.trusts("127.0.0.1")


@pytest.mark.parametrize("peer", [None, "not-an-ip", ""])
def test_an_unknown_peer_is_no_address_and_its_header_is_not_believed(peer: str | None) -> None:
    rule = ClientAddress([ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")])
    assert rule.resolve(peer, "198.51.100.1") is None
    assert not rule.trusts(peer)


def test_trust_is_by_network_and_version() -> None:
    rule = ClientAddress(TRUSTED)
    assert rule.trusts("10.255.0.1")
    assert rule.trusts("::ffff:10.0.0.1")
    assert not rule.trusts("11.0.0.1")
    assert not rule.trusts("::2")
    assert parse_address("1.2.3.4:80") == ipaddress.ip_address("1.2.3.4")
    assert parse_address("2001:db8::1") == ipaddress.ip_address("2001:db8::1")  # many colons: no port


@pytest.mark.parametrize("settings", [GatewaySettings, UsersSettings])
def test_both_services_read_trusted_proxies_alike(
    settings: type[GatewaySettings | UsersSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Comma-separated or a JSON list; a network with host bits set is refused, not silently widened."""
    if settings is UsersSettings:  # it starts only with its signing keys
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        monkeypatch.setenv("JWT_SIGNING_KEYS", json.dumps({"k1": pem.decode()}))
        monkeypatch.setenv("JWT_ACTIVE_KID", "k1")
    expected = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, ::1/128")
    assert settings().trusted_proxies == expected
    monkeypatch.setenv("TRUSTED_PROXIES", '["10.0.0.0/8", "::1/128"]')
    assert settings().trusted_proxies == expected
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.1/8")
    with pytest.raises(ValidationError):
        settings()
