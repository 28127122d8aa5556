"""Who the client is behind proxies: one rule for every service that needs the answer (the gateway keys its
rate limits by it, the users service charges failed logins to it), so both name the same client for the
same request.

The client is the TCP peer, unless the peer is a trusted proxy: then ``X-Forwarded-For`` is walked from the
right (each proxy appends the address it saw, so only the right end was written by someone we trust),
skipping trusted proxies, and the first address that is not one is the client. An entry that is not an
address stops the walk at the last trusted hop: what lies left of it is unknowable, never skipped over.
Entries may carry a port (``198.51.100.1:4711``, ``[2001:db8::1]:443``); IPv4-mapped IPv6 addresses
(``::ffff:10.0.0.5``, what a dual-stack socket reports for an IPv4 peer) are the IPv4 address.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split_networks(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# The ``TRUSTED_PROXIES`` setting: CIDRs, comma-separated or a JSON list. Host bits must be zero
# (``10.0.0.1/8`` is refused): pydantic builds the networks with ``strict=True``, the ipaddress default.
TrustedProxies = Annotated[list[IPNetwork], NoDecode, BeforeValidator(_split_networks)]


@functools.lru_cache(maxsize=65536)
def parse_address(text: str) -> IPAddress | None:
    """The address in ``text`` (an optional port and IPv6 brackets removed, IPv4-mapped IPv6 made IPv4), or
    None when it is not an address."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6] or [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddress:
    """The rule above, for one set of trusted proxies (``TRUSTED_PROXIES``)."""

    def __init__(self, trusted: Iterable[IPNetwork]) -> None:
        self.trusted = tuple(trusted)
        # Per instance, so a rule's answers never outlive it; the same few proxies ask again and again.
        self._is_trusted = functools.lru_cache(maxsize=4096)(self._check)

    def _check(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted)  # False across IP versions

    def trusts(self, peer: str | None) -> bool:
        """Is this peer (the TCP peer's host, as the server reports it) a trusted proxy?"""
        if not self.trusted or peer is None:
            return False
        address = parse_address(peer)
        return address is not None and self._is_trusted(address)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> IPAddress | None:
        """The client's address; ``forwarded_for`` is every ``X-Forwarded-For`` line joined with commas.
        None only when the peer itself is unknown or not an address (then no header is believed)."""
        address = parse_address(peer) if peer is not None else None
        if address is None or not forwarded_for or not self.trusted or not self._is_trusted(address):
            return address
        for hop in reversed(forwarded_for.split(",")):
            parsed = parse_address(hop)
            if parsed is None:
                break  # garbage: the nearest trusted hop is the best we know
            address = parsed
            if not self._is_trusted(parsed):
                break
        return address
