"""Path rules: which paths the gateway forwards at all, to which upstream, and which ones get limits of
their own. Checked before anything else happens to a request."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import quote

from services import catalog

LOGIN_PATH = "/api/v1/sessions"
# Requests that make the users service hash a new password.
PASSWORD_SETTING = frozenset({("POST", "/api/v1/users"), ("PATCH", "/api/v1/users/me")})

# One or more non-empty segments of RFC 3986 path characters (unreserved, sub-delims, ':' and '@'), in their
# decoded form: no percent sign (a second encoding layer), backslash, space, control or non-ASCII character.
_CLEAN_PATH = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@]+)+/?|/")
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def is_clean_public_path(path: str) -> bool:
    """True only for a plain absolute path with no tricks: no empty, ``.`` or ``..`` segments, no
    character outside the path alphabet, and no ``internal`` segment in any letter case. ``path`` is
    the already percent-decoded ASGI path."""
    if not _CLEAN_PATH.fullmatch(path):
        return False
    if "/." in path and any(segment in (".", "..") for segment in path.split("/")):
        return False
    lowered = path.lower()
    return "/internal" not in lowered or "internal" not in lowered.split("/")


def quote_path(path: str) -> str:
    """A checked path as it goes upstream: percent-encoded again, nothing else changed."""
    return quote(path, safe=_PATH_SAFE)


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """What the kit's observability middleware reads from ``scope["route"]``: the template for labels."""

    path: str


@dataclass(frozen=True, slots=True)
class _Prefix:
    prefix: str
    exact_only: bool
    at_prefix: RouteTemplate
    below_prefix: RouteTemplate
    upstream: str


class PrefixRoutes:
    """The catalog's public prefixes of the routed upstreams, longest first: a path is the prefix itself or
    lies below it (``/api/v1/products/...``, never ``/api/v1/productsx``); a prefix naming a document
    (``/.well-known/jwks.json``) matches only itself."""

    def __init__(self, upstreams: Collection[str]) -> None:
        self._table = tuple(
            _Prefix(
                prefix,
                prefix.endswith(".json"),
                RouteTemplate(prefix),
                RouteTemplate(prefix + "/{rest:path}"),
                service.name,
            )
            for prefix, service in catalog.route_table()
            if service.name in upstreams
        )

    def match(self, path: str) -> tuple[RouteTemplate, str] | None:
        """(the route template, the upstream's name) for a forwarded path, else None."""
        for entry in self._table:
            if path == entry.prefix:
                return entry.at_prefix, entry.upstream
            if not entry.exact_only and path.startswith(entry.prefix) and path[len(entry.prefix)] == "/":
                return entry.below_prefix, entry.upstream
        return None
