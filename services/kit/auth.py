"""Token verification: user JWTs against the users service's JWKS, service tokens on ``/internal/*``.

Only EdDSA is accepted: ``alg: none``, HMAC (including the classic "HS256 signed with the public key")
and RSA tokens are refused before any signature check. Every service verifies tokens itself, not only
the gateway (defence in depth).

Service-to-service: a caller signs a 2-minute token with its own Ed25519 key (``sub`` = caller, ``aud``
= ``svc:<callee>``); the callee holds the public keys of exactly the callers the catalog allows, so a
leaked key of one service cannot impersonate another. Each internal route names the catalog API it
belongs to (``internal_api``), whose caller list is the route's allow-list.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute

from services import catalog
from services.kit import keys
from services.kit.context import user_id_var
from services.kit.errors import Problem

log = logging.getLogger(__name__)

ALGORITHMS = ["EdDSA"]
SERVICE_TOKEN_TTL_S = 120
_REQUIRED_USER_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid", "jti"]


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@dataclass(frozen=True)
class Principal:
    """The authenticated user behind a request."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: frozenset[str]
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


class KeySource(Protocol):
    async def key_for(self, kid: str) -> Ed25519PublicKey | None: ...


class StaticKeys:
    """Keys known in-process (the users service verifies with the keys it signs with)."""

    def __init__(self, public_keys: dict[str, Ed25519PublicKey]) -> None:
        self._keys = dict(public_keys)

    async def key_for(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)


class JWKSClient:
    """Fetches and caches a JWKS; refreshes on expiry and on an unknown ``kid`` (a rotation), but at
    most once per ``min_refresh_interval`` so a flood of made-up kids cannot hammer the users service."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_refresh_interval: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refresh_interval = min_refresh_interval
        self._client = client or httpx.AsyncClient(timeout=3.0)
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        response = await self._client.get(self.url)
        response.raise_for_status()
        found: dict[str, Ed25519PublicKey] = {}
        for entry in response.json().get("keys", []):
            if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519" or "kid" not in entry:
                continue
            key = jwt.PyJWK(entry, algorithm="EdDSA").key
            if isinstance(key, Ed25519PublicKey):
                found[entry["kid"]] = key
        self._keys = found
        self._fetched_at = time.monotonic()

    async def key_for(self, kid: str) -> Ed25519PublicKey | None:
        age = time.monotonic() - self._fetched_at
        if kid in self._keys and age < self.ttl:
            return self._keys[kid]
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = age >= self.ttl
            unknown_and_allowed = kid not in self._keys and age >= self.min_refresh_interval
            if stale or unknown_and_allowed:
                try:
                    await self._refresh()
                except (httpx.HTTPError, ValueError) as exc:
                    # Keep serving the keys we have: a users-service blip must not log everyone out.
                    log.warning(
                        "JWKS refresh failed", extra={"event": "jwks_refresh_failed", "error_type": type(exc).__name__}
                    )
                    if not self._keys:
                        raise Problem(
                            503, "Token keys are not available yet; retry shortly.", kind="upstream-unavailable"
                        ) from exc
        return self._keys.get(kid)

    async def aclose(self) -> None:
        await self._client.aclose()


class TokenVerifier:
    """Verifies user access tokens, once per process per token.

    A token that verified is remembered, keyed by the whole token string, for at most ``cache_ttl_s`` and
    never past its ``exp``: the same string verifies the same way until it expires (signature, ``iss``,
    ``aud`` and claims are all inside it), so repeating the Ed25519 check and the claim parsing on every
    request buys nothing. What the cache does change: a key removed from the key set keeps accepting the
    tokens this process has already seen for up to ``cache_ttl_s`` (rotation removes a key only after the
    access-token lifetime anyway). Refusals are not cached. The cache is cleared when it holds
    ``cache_max_entries`` tokens, so its memory is bounded.
    """

    def __init__(
        self,
        source: KeySource,
        *,
        issuer: str,
        audience: str,
        cache_ttl_s: float = 30.0,
        cache_max_entries: int = 10_000,
    ) -> None:
        self.source = source
        self.issuer = issuer
        self.audience = audience
        self.cache_ttl_s = cache_ttl_s
        self.cache_max_entries = cache_max_entries
        self._accepted: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        now = time.time()
        hit = self._accepted.get(token)
        if hit is not None and now < hit[1]:
            return hit[0]
        principal = await self._verify(token)
        if self.cache_ttl_s > 0:
            if len(self._accepted) >= self.cache_max_entries:
                self._accepted.clear()
            self._accepted[token] = (principal, min(float(principal.claims["exp"]), now + self.cache_ttl_s))
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _unauthorized("The access token is malformed.") from None
        if header.get("alg") not in ALGORITHMS:
            raise _unauthorized("The access token's algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _unauthorized("The access token has no key id.")
        key = await self.source.key_for(kid)
        if key is None:
            raise _unauthorized("The access token was signed with an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED_USER_CLAIMS},
            )
            principal = Principal(
                user_id=uuid.UUID(str(claims["sub"])),
                session_id=uuid.UUID(str(claims["sid"])),
                roles=frozenset(str(r) for r in claims.get("roles", [])),
                claims=claims,
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("The access token has expired.") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise _unauthorized("The access token is not valid.") from None
        return principal


_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/sessions")


async def _principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("An access token is required (Authorization: Bearer ...).")
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = await verifier.verify(credentials.credentials)
    user_id_var.set(str(principal.user_id))
    return principal


async def authenticate(request: Request) -> Principal:
    """The principal of ``request``'s bearer token, exactly as ``CurrentUser`` resolves it: for a route
    served outside FastAPI's dependency resolution (``kit.app.FrontRoute``)."""
    return await _principal(request, await _bearer(request))


async def _admin(principal: Principal = Depends(_principal)) -> Principal:
    if not principal.is_admin:
        raise Problem(403, "This operation needs the admin role.")
    return principal


CurrentUser = Annotated[Principal, Depends(_principal)]
AdminUser = Annotated[Principal, Depends(_admin)]


class ServiceTokenIssuer:
    """Signs this service's short-lived tokens for the services it calls; one cached token per callee."""

    def __init__(self, service: str, private_pem: str) -> None:
        self.service = service
        self._key: Ed25519PrivateKey = keys.load_private(private_pem)
        self._cache: dict[str, tuple[str, float]] = {}

    def token_for(self, callee: str) -> str:
        cached = self._cache.get(callee)
        now = time.time()
        if cached and cached[1] - now > 30:
            return cached[0]
        exp = now + SERVICE_TOKEN_TTL_S
        token = jwt.encode(
            {
                "iss": f"svc:{self.service}",
                "sub": self.service,
                "aud": f"svc:{callee}",
                "iat": int(now),
                "exp": int(exp),
            },
            self._key,
            algorithm="EdDSA",
            headers={"kid": f"svc:{self.service}"},
        )
        self._cache[callee] = (token, exp)
        return token


class ServiceTokenVerifier:
    """Accepts tokens only from the callers the catalog allows, each checked against its own key: public keys
    of anyone else (a misconfigured Secret, say) are dropped here, so they can never verify."""

    def __init__(self, service: str, public_pems: dict[str, str]) -> None:
        self.service = service
        allowed = set(catalog.callers_of(service))
        self._keys = {caller: keys.load_public(pem) for caller, pem in public_pems.items() if caller in allowed}

    def verify(self, token: str, api: str) -> str:
        """The caller behind ``token`` if the catalog lets it call internal API ``api``: 401 for no valid
        token from a known caller, 403 for a known caller that ``api`` does not list."""
        try:
            header = jwt.get_unverified_header(token)
            caller = str(header.get("kid", "")).removeprefix("svc:")
            key = self._keys.get(caller)
            if header.get("alg") not in ALGORITHMS or key is None:
                raise jwt.InvalidTokenError("caller not allowed")
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=f"svc:{self.service}",
                issuer=f"svc:{caller}",
                options={"require": ["exp", "iat", "sub"]},
            )
            if claims["sub"] != caller:
                raise jwt.InvalidTokenError("subject mismatch")
        except jwt.InvalidTokenError:
            raise Problem(
                401,
                "A valid service credential is required for internal routes.",
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
        if caller not in catalog.api_callers(self.service, api):
            raise Problem(403, f"Service {caller!r} may not use this route.")
        return caller


class InternalApiCaller:
    """FastAPI dependency of one internal route: the verified service calling it, refused unless the catalog
    lists that service as a caller of ``api`` (this service's ``InternalApi`` of that name)."""

    def __init__(self, api: str) -> None:
        self.api = api

    async def __call__(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> str:
        if credentials is None:
            raise Problem(
                401, "A service credential is required for internal routes.", headers={"WWW-Authenticate": "Bearer"}
            )
        verifier: ServiceTokenVerifier = request.app.state.service_verifier
        return verifier.verify(credentials.credentials, self.api)


def internal_api(api: str) -> Any:
    """``caller: Annotated[str, internal_api("reservations")]``: the one way a route is made internal.
    ``create_app`` refuses a ``/internal`` route without it and an API name the catalog does not declare."""
    return Depends(InternalApiCaller(api))


def _internal_apis(dependant: Dependant) -> list[str]:
    found = [d.call.api for d in dependant.dependencies if isinstance(d.call, InternalApiCaller)]
    for sub in dependant.dependencies:
        found.extend(_internal_apis(sub))
    return found


def check_internal_routes(service: str, routes: Iterable[BaseRoute]) -> None:
    """Every ``/internal`` route of ``service`` names a catalog API of ``service``; raises at start-up."""
    for route in routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/internal"):
            continue
        apis = _internal_apis(route.dependant)
        if not apis:
            raise RuntimeError(
                f"{service}: internal route {route.path} has no caller allow-list "
                "(add `caller: Annotated[str, internal_api(<catalog API>)]`)"
            )
        for api in apis:
            catalog.api_callers(service, api)
